//! POSIX shell quoting, the one quoter: for the scripts we run in pods (`sh -c`)
//! and for the commands we print for the user to run.

/// Quotes `s` as one POSIX `sh` word: a word made only of
/// `[A-Za-z0-9-_./=:@%+,]` stays as it is, anything else (the empty word
/// included) is single-quoted, each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(
            quote("/etc/containerd/config.toml"),
            "/etc/containerd/config.toml"
        );
        assert_eq!(quote("a=b:c@d%e+f,g-h_i"), "a=b:c@d%e+f,g-h_i");
    }

    #[test]
    fn others_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;rm -rf /"), "'a;rm -rf /'");
    }

    /// The quoted word reaches a real `sh` as the original string.
    #[test]
    fn round_trips_through_sh() {
        for s in [
            "",
            "plain",
            "a b",
            "it's",
            "$(x) `y` \"z\" \\ *?",
            "/etc/x y/'q'",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(s)))
                .output()
                .expect("sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
