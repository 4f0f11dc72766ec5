//! HAProxy's configuration syntax: sections (`global`, `defaults`,
//! `listen`, `frontend`, `backend`, ...) of one-line directives; words
//! separated by blanks, `#` comments, `"..."`/`'...'` quoting and backslash
//! escapes.

use crate::source::{Line, redact};

/// Keywords that start a section.
const SECTION_KEYWORDS: &[&str] = &[
    "global",
    "defaults",
    "listen",
    "frontend",
    "backend",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "cache",
    "program",
    "http-errors",
    "ring",
    "fcgi-app",
    "dynamic-update",
    "log-forward",
];

/// One directive: its words (unquoted, unescaped) and its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Directive {
    /// Keyword then arguments.
    pub words: Vec<String>,
    /// The source line.
    pub line: Line,
}

impl Directive {
    /// The keyword.
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The argument at `index` (0 is the first after the keyword).
    pub fn arg(&self, index: usize) -> Option<&str> {
        self.words.get(index + 1).map(String::as_str)
    }
}

/// A section: its header and directives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Section {
    /// `global`, `defaults`, `listen`, ...
    pub kind: String,
    /// The name, for sections that have one.
    pub name: Option<String>,
    /// Words after the name (`from DEFAULTS`, or an address on `listen`).
    pub args: Vec<String>,
    /// The header line.
    pub line: Line,
    /// The directives, in order.
    pub directives: Vec<Directive>,
}

/// Parses `text` (read from `file`) into sections. Directives before the
/// first section are kept in a section of kind `""`.
pub(crate) fn parse(file: &str, text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let words = split(raw);
        let Some(keyword) = words.first() else {
            continue;
        };
        let line = Line {
            file: file.to_owned(),
            number: index + 1,
            text: redact(raw, &words),
        };
        if SECTION_KEYWORDS.contains(&keyword.as_str()) {
            let name = if keyword == "global" || (keyword == "defaults" && words.len() < 2) {
                None
            } else {
                words.get(1).cloned()
            };
            let args = words.iter().skip(2).cloned().collect();
            sections.push(Section {
                kind: keyword.clone(),
                name,
                args,
                line,
                directives: Vec::new(),
            });
            continue;
        }
        if sections.is_empty() {
            sections.push(Section {
                kind: String::new(),
                name: None,
                args: Vec::new(),
                line: line.clone(),
                directives: Vec::new(),
            });
        }
        sections
            .last_mut()
            .expect("a section was pushed above")
            .directives
            .push(Directive { words, line });
    }
    sections
}

/// Splits a line into words as HAProxy does: blanks separate, `#` outside
/// quotes ends the line, `"..."` and `'...'` quote (single quotes take
/// everything literally), a backslash escapes the next character (`\r`,
/// `\n`, `\t` are control characters).
fn split(raw: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') => break,
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
                in_word = true;
                match chars.next() {
                    Some('r') => word.push('\r'),
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some(other) => word.push(other),
                    None => word.push('\\'),
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_directives() {
        let sections = parse(
            "haproxy.cfg",
            "global\n  daemon\n\ndefaults tcp\n  mode tcp # comment\nlisten mysql from tcp\n  bind :3306\n  tcp-check send PING\\r\\n\n",
        );
        assert_eq!(sections.len(), 3);
        assert_eq!(sections[0].kind, "global");
        assert_eq!(sections[0].directives[0].words, ["daemon"]);
        assert_eq!(sections[1].name.as_deref(), Some("tcp"));
        assert_eq!(sections[1].directives[0].words, ["mode", "tcp"]);
        assert_eq!(sections[2].args, ["from", "tcp"]);
        assert_eq!(
            sections[2].directives[1].words,
            ["tcp-check", "send", "PING\r\n"]
        );
        assert_eq!(sections[2].directives[1].line.number, 8);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(split(r#"a "b c" 'd\e' f\ g"#), ["a", "b c", "d\\e", "f g"]);
        assert_eq!(split("   # only a comment"), Vec::<String>::new());
    }
}
