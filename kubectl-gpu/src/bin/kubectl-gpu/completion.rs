//! Shell completion.
//!
//! - `kubectl gpu completion bash|zsh|fish|powershell|elvish` prints clap's
//!   static script for the `kubectl-gpu` binary name (completes
//!   `kubectl-gpu <TAB>` typed directly).
//! - `kubectl gpu completion kubectl` prints the `kubectl_complete-gpu`
//!   helper. kubectl >= 1.26 runs an executable of that name on PATH for
//!   `kubectl gpu <TAB>` (its own completion must be loaded), passing the
//!   words after `gpu`, the last one being the word under the cursor.
//! - `kubectl-gpu __complete WORDS...` (what the helper runs; intercepted
//!   before argument parsing, so any word is allowed) answers in Cobra's
//!   protocol: one `candidate<TAB>description` per line, then
//!   `:<directive>` (4 = no file completion, 0 = default/files).
//!
//! The candidates come from the clap `Command` tree itself (subcommands,
//! flags, possible values), plus kubeconfig context/cluster/user names for
//! `--context`, `--cluster` and `--user`. No API server is contacted.

use clap::{Arg, Command, CommandFactory, ValueEnum, ValueHint};
use std::io::Write;

/// The hidden first argument the helper passes.
pub const COMPLETE_ARG: &str = "__complete";

/// Cobra's `ShellCompDirective` values used here.
pub const DIRECTIVE_DEFAULT: u32 = 0;
pub const DIRECTIVE_NO_FILE_COMP: u32 = 4;

/// The helper kubectl runs for `kubectl gpu <TAB>`; also shipped as
/// `release/kubectl_complete-gpu` in the archives (tests keep them equal).
pub const KUBECTL_HELPER: &str = "\
#!/bin/sh
# kubectl >= 1.26 runs kubectl_complete-gpu for `kubectl gpu <TAB>`.
# Put this file, executable, on PATH next to kubectl-gpu, e.g.:
#   kubectl gpu completion kubectl > \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-gpu\"
#   chmod +x \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-gpu\"
exec kubectl-gpu __complete \"$@\"
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
    /// The `kubectl_complete-gpu` helper for `kubectl gpu <TAB>` (kubectl >= 1.26)
    Kubectl,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Install:
  bash:   kubectl gpu completion bash > ~/.local/share/bash-completion/completions/kubectl-gpu
  zsh:    kubectl gpu completion zsh > \"${fpath[1]}/_kubectl-gpu\"
  fish:   kubectl gpu completion fish > ~/.config/fish/completions/kubectl-gpu.fish
  pwsh:   kubectl gpu completion powershell >> $PROFILE
  kubectl gpu <TAB> (kubectl >= 1.26, with kubectl's own completion loaded):
          kubectl gpu completion kubectl > \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-gpu\"
          chmod +x \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-gpu\"")]
pub struct Args {
    /// Shell to print a completion script for, or `kubectl` for the helper script
    #[arg(value_enum)]
    pub shell: Target,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let mut stdout = std::io::stdout();
    let shell = match args.shell {
        Target::Kubectl => {
            stdout.write_all(KUBECTL_HELPER.as_bytes())?;
            return Ok(0);
        }
        Target::Bash => clap_complete::Shell::Bash,
        Target::Zsh => clap_complete::Shell::Zsh,
        Target::Fish => clap_complete::Shell::Fish,
        Target::Powershell => clap_complete::Shell::PowerShell,
        Target::Elvish => clap_complete::Shell::Elvish,
    };
    clap_complete::generate(
        shell,
        &mut crate::Cli::command(),
        "kubectl-gpu",
        &mut stdout,
    );
    Ok(0)
}

/// Answers `kubectl-gpu __complete ...` before normal argument parsing;
/// `None` when the first argument is not `__complete`.
pub fn intercept() -> Option<std::process::ExitCode> {
    let mut argv = std::env::args_os().skip(1);
    if argv.next()? != COMPLETE_ARG {
        return None;
    }
    let words: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
    let (candidates, directive) = complete(&mut crate::Cli::command(), &words);
    let mut out = String::new();
    for (value, help) in candidates {
        out.push_str(&value);
        if let Some(h) = help.filter(|h| !h.is_empty()) {
            out.push('\t');
            out.push_str(&h);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    let _ = std::io::stdout().write_all(out.as_bytes());
    eprintln!("Completion ended with directive: {directive}");
    Some(std::process::ExitCode::SUCCESS)
}

pub type Candidate = (String, Option<String>);

fn first_line(s: Option<String>) -> Option<String> {
    s.and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
}

fn takes_value(a: &Arg) -> bool {
    a.get_action().takes_values() && a.get_num_args().is_none_or(|r| r.takes_values())
}

fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

fn find_sub<'a>(cmd: &'a Command, word: &str) -> Option<&'a Command> {
    cmd.get_subcommands()
        .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
}

/// Names from the kubeconfig the line selects (`--kubeconfig P`, else
/// `$KUBECONFIG`, else ~/.kube/config); empty on any error.
fn kubeconfig_names(kubeconfig: Option<&str>, what: &str) -> Vec<String> {
    let cfg = match kubeconfig {
        Some(p) => kube::config::Kubeconfig::read_from(p),
        None => kube::config::Kubeconfig::read(),
    };
    let Ok(cfg) = cfg else { return Vec::new() };
    match what {
        "context" => cfg.contexts.into_iter().map(|c| c.name).collect(),
        "cluster" => cfg.clusters.into_iter().map(|c| c.name).collect(),
        "user" => cfg.auth_infos.into_iter().map(|c| c.name).collect(),
        _ => Vec::new(),
    }
}

fn values_for(
    a: &Arg,
    current: &str,
    prefix: &str,
    kubeconfig: Option<&str>,
) -> (Vec<Candidate>, u32) {
    let pvs = a.get_possible_values();
    if !pvs.is_empty() {
        let c = pvs
            .iter()
            .filter(|p| !p.is_hide_set() && p.get_name().starts_with(current))
            .map(|p| {
                (
                    format!("{prefix}{}", p.get_name()),
                    first_line(p.get_help().map(|h| h.to_string())),
                )
            })
            .collect();
        return (c, DIRECTIVE_NO_FILE_COMP);
    }
    let id = a.get_id().as_str();
    if matches!(id, "context" | "cluster" | "user") {
        let c = kubeconfig_names(kubeconfig, id)
            .into_iter()
            .filter(|n| n.starts_with(current))
            .map(|n| (format!("{prefix}{n}"), None))
            .collect();
        return (c, DIRECTIVE_NO_FILE_COMP);
    }
    let pathish = matches!(
        a.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath | ValueHint::ExecutablePath
    ) || a.get_value_names().is_some_and(|v| {
        v.iter()
            .any(|n| matches!(n.as_str(), "PATH" | "FILE" | "DIR"))
    });
    let directive = if pathish {
        DIRECTIVE_DEFAULT
    } else {
        DIRECTIVE_NO_FILE_COMP
    };
    (Vec::new(), directive)
}

/// Completes the last of `words` (the words after `kubectl gpu`; the last
/// is the partial word, `""` after a space) against `cmd`.
pub fn complete(cmd: &mut Command, words: &[String]) -> (Vec<Candidate>, u32) {
    cmd.build();
    let cmd: &Command = cmd;
    let (current, before) = match words.split_last() {
        Some((c, b)) => (c.as_str(), b),
        None => ("", &[][..]),
    };
    let mut cur = cmd;
    let mut pending: Option<&Arg> = None;
    let mut positionals = 0usize;
    let mut after_dashdash = false;
    let mut kubeconfig: Option<String> = None;
    for w in before {
        if let Some(a) = pending.take() {
            if a.get_id() == "kubeconfig" {
                kubeconfig = Some(w.clone());
            }
            continue;
        }
        if after_dashdash {
            positionals += 1;
            continue;
        }
        if w == "--" {
            after_dashdash = true;
        } else if let Some(long) = w.strip_prefix("--") {
            match long.split_once('=') {
                Some(("kubeconfig", v)) => kubeconfig = Some(v.to_string()),
                Some(_) => {}
                None => pending = find_long(cur, long).filter(|a| takes_value(a)),
            }
        } else if let Some(shorts) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
            let n = shorts.chars().count();
            for (i, c) in shorts.chars().enumerate() {
                if let Some(a) = find_short(cur, c).filter(|a| takes_value(a)) {
                    if i + 1 == n {
                        pending = Some(a);
                    }
                    break; // the rest of the word is the value
                }
            }
        } else if let Some(sub) = find_sub(cur, w) {
            cur = sub;
            positionals = 0;
        } else {
            positionals += 1;
        }
    }
    let kc = kubeconfig.as_deref();
    if let Some(a) = pending {
        return values_for(a, current, "", kc);
    }
    if !after_dashdash
        && current.starts_with("--")
        && let Some((flag, val)) = current[2..].split_once('=')
    {
        return match find_long(cur, flag) {
            Some(a) => values_for(a, val, &format!("--{flag}="), kc),
            None => (Vec::new(), DIRECTIVE_NO_FILE_COMP),
        };
    }
    if !after_dashdash && current.starts_with('-') {
        let mut c: Vec<Candidate> = Vec::new();
        for a in cur
            .get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set())
        {
            let help = first_line(a.get_help().map(|h| h.to_string()));
            if let Some(l) = a.get_long() {
                let name = format!("--{l}");
                if name.starts_with(current) {
                    c.push((name, help.clone()));
                }
            }
            if current == "-"
                && let Some(s) = a.get_short()
            {
                c.push((format!("-{s}"), help));
            }
        }
        return (c, DIRECTIVE_NO_FILE_COMP);
    }
    let mut c: Vec<Candidate> = Vec::new();
    if !after_dashdash {
        for s in cur.get_subcommands().filter(|s| !s.is_hide_set()) {
            if s.get_name().starts_with(current) {
                c.push((
                    s.get_name().to_string(),
                    first_line(s.get_about().map(|h| h.to_string())),
                ));
            }
        }
    }
    let positional = cur
        .get_arguments()
        .filter(|a| a.is_positional() && !a.is_hide_set())
        .nth(positionals);
    match positional {
        Some(a) => {
            let (v, d) = values_for(a, current, "", kc);
            c.extend(v);
            let d = if cur.has_subcommands() {
                DIRECTIVE_NO_FILE_COMP
            } else {
                d
            };
            (c, d)
        }
        None => (c, DIRECTIVE_NO_FILE_COMP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(words: &[&str]) -> (Vec<String>, u32) {
        let w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let (c, d) = complete(&mut crate::Cli::command(), &w);
        (c.into_iter().map(|(v, _)| v).collect(), d)
    }

    #[test]
    fn top_level_lists_subcommands() {
        let (c, d) = names(&[""]);
        for s in ["check-runtime", "completion", "version"] {
            assert!(c.iter().any(|x| x == s), "{s} missing from {c:?}");
        }
        assert!(!c.iter().any(|x| x.starts_with("__")));
        assert_eq!(d, DIRECTIVE_NO_FILE_COMP);
        assert_eq!(names(&["ch"]).0, ["check-runtime"]);
    }

    #[test]
    fn flags_values_and_nesting() {
        let (c, _) = names(&["check-runtime", "--d"]);
        assert_eq!(c, ["--deep"]);
        // global flags after the subcommand
        let (c, _) = names(&["check-runtime", "--cont"]);
        assert_eq!(c, ["--context"]);
        let (c, d) = names(&["--context", "x", "check-runtime", "-o", ""]);
        assert_eq!(c, ["table", "wide", "json", "yaml"]);
        assert_eq!(d, DIRECTIVE_NO_FILE_COMP);
        assert_eq!(names(&["version", "--output=j"]).0, ["--output=json"]);
        assert_eq!(names(&["completion", "ba"]).0, ["bash"]);
        assert!(
            names(&["completion", ""])
                .0
                .contains(&"kubectl".to_string())
        );
        // a value-taking flag's value is skipped, not taken for a subcommand
        assert_eq!(names(&["-o", "json", "ver"]).0, ["verify", "version"]);
        // --kubeconfig completes files
        assert_eq!(names(&["--kubeconfig", ""]), (vec![], DIRECTIVE_DEFAULT));
    }

    #[test]
    fn contexts_come_from_the_named_kubeconfig() {
        let dir = std::env::temp_dir().join(format!("kubectl-gpu-compl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kc = dir.join("config");
        std::fs::write(
            &kc,
            "apiVersion: v1\nkind: Config\nclusters: [{name: c1, cluster: {server: 'https://x'}}]\n\
             users: [{name: u1, user: {}}]\ncontexts:\n- {name: prod, context: {cluster: c1, user: u1}}\n\
             - {name: dev, context: {cluster: c1, user: u1}}\ncurrent-context: dev\n",
        )
        .unwrap();
        let p = kc.display().to_string();
        assert_eq!(names(&["--kubeconfig", &p, "--context", "p"]).0, ["prod"]);
        assert_eq!(
            names(&[&format!("--kubeconfig={p}"), "--user", ""]).0,
            ["u1"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn helper_script_matches_the_shipped_file() {
        let shipped = include_str!("../../../../release/kubectl_complete-gpu");
        assert_eq!(shipped, KUBECTL_HELPER);
    }
}
