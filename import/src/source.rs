//! Where a directive came from, and the comments the output carries about
//! source lines.

use std::net::SocketAddr;
use std::time::Duration;

/// One line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The file, as named on the command line or by an include.
    pub file: String,
    /// 1-based line number.
    pub number: usize,
    /// The line as written, without surrounding white space.
    pub text: String,
}

impl Line {
    /// A comment saying this line is not translated, and why.
    pub(crate) fn untranslated(&self, why: impl AsRef<str>) -> Comment {
        Comment::Untranslated(format!(
            "hafront import: {}:{}: {} — not translated: {}",
            self.file,
            self.number,
            self.text,
            why.as_ref()
        ))
    }

    /// A comment explaining how this line was translated.
    pub(crate) fn note(&self, explanation: impl AsRef<str>) -> Comment {
        Comment::Note(format!(
            "hafront import: {}:{}: {} — {}",
            self.file,
            self.number,
            self.text,
            explanation.as_ref()
        ))
    }
}

/// A comment in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Comment {
    /// A source line (or part of it) that has no hafront equivalent.
    Untranslated(String),
    /// How a source line was translated, or what the user must do.
    Note(String),
    /// Free text (the header).
    Text(String),
}

impl Comment {
    /// The comment's text, without the `#`.
    pub fn text(&self) -> &str {
        match self {
            Comment::Untranslated(text) | Comment::Note(text) | Comment::Text(text) => text,
        }
    }
}

/// The text of a source line for comments: as written, but cut after a
/// word that introduces a secret (`auth_pass`, `AUTH`, `password`, ...),
/// so that no password is ever copied into the output.
pub(crate) fn redact(raw: &str, words: &[String]) -> String {
    const SECRET_WORDS: &[&str] = &[
        "auth_pass",
        "auth",
        "password",
        "insecure-password",
        "authorization",
        "requirepass",
        "masterauth",
    ];
    let secret = words.iter().position(|word| {
        let first = word
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        SECRET_WORDS.contains(&first.trim_end_matches(':'))
    });
    match secret {
        Some(index) if index + 1 < words.len() || words[index].contains(char::is_whitespace) => {
            let mut kept: Vec<&str> = words[..index].iter().map(String::as_str).collect();
            kept.push(words[index].split_whitespace().next().unwrap_or(""));
            format!("{} ...", kept.join(" "))
        }
        _ => raw.trim().to_owned(),
    }
}

/// Splits a command line into argv the way keepalived does for its scripts
/// (no shell): words separated by blanks, `"..."` and `'...'` quoting,
/// backslash escaping the next character.
pub(crate) fn split_command(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(open), c) if c == open => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A time given in (possibly fractional) seconds, as keepalived writes
/// them (`advert_int 0.5`, `delay_loop 6`).
pub(crate) fn seconds(text: &str) -> Option<Duration> {
    let value: f64 = text.parse().ok()?;
    (0.0..1e9)
        .contains(&value)
        .then(|| Duration::from_secs_f64(value))
}

/// Whether two listen addresses clash as hafront's validation sees it: the
/// same port and family, and the same address or a wildcard.
pub(crate) fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_keepalived_scripts() {
        assert_eq!(
            split_command("/usr/local/bin/vrrp.sh  MASTER  VI_1"),
            ["/usr/local/bin/vrrp.sh", "MASTER", "VI_1"]
        );
        assert_eq!(
            split_command(r#"/bin/check "a b" 'c d' e\ f"#),
            ["/bin/check", "a b", "c d", "e f"]
        );
        assert_eq!(split_command("  "), Vec::<String>::new());
    }

    #[test]
    fn secrets_are_cut_from_comments() {
        let words = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            redact("auth_pass 1111", &words("auth_pass 1111")),
            "auth_pass ..."
        );
        assert_eq!(
            redact("stats auth admin:pw", &words("stats auth admin:pw")),
            "stats auth ..."
        );
        let auth = vec![
            "tcp-check".to_owned(),
            "send".to_owned(),
            "AUTH pw\r\n".to_owned(),
        ];
        assert_eq!(redact("", &auth), "tcp-check send AUTH ...");
        assert_eq!(
            redact(" auth_type PASS ", &words("auth_type PASS")),
            "auth_type PASS"
        );
    }

    #[test]
    fn seconds_may_be_fractional() {
        assert_eq!(seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(seconds("6"), Some(Duration::from_secs(6)));
        assert_eq!(seconds("-1"), None);
        assert_eq!(seconds("x"), None);
    }
}
