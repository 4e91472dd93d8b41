//! Progress of a `verify` run: the [`Progress`] callbacks the binary draws
//! a bar from, and the bar's message ([`progress_message`]).

use super::results::Outcome;

/// The progress bar's message: the nodes in flight, shortened to `max` chars.
pub fn progress_message(in_flight: &[String], max: usize) -> String {
    if in_flight.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for (i, n) in in_flight.iter().enumerate() {
        let sep = if out.is_empty() { "" } else { ", " };
        let rest = in_flight.len() - i;
        let more = format!(" +{} more", rest);
        if out.len() + sep.len() + n.len() + if rest > 1 { more.len() } else { 0 } > max
            && !out.is_empty()
        {
            out.push_str(&format!(" +{rest} more"));
            return out;
        }
        out.push_str(sep);
        out.push_str(n);
    }
    out
}

/// Receives progress (the binary draws a bar from it).
pub trait Progress: Send + Sync {
    fn begin(&self, _total: usize) {}
    fn started(&self, _node: &str) {}
    fn finished(&self, _node: &str, _outcome: Outcome) {}
    fn end(&self) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}
