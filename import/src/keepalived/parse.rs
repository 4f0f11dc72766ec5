//! keepalived's configuration syntax: one statement per line (keyword and
//! arguments), `{ ... }` blocks that may span lines, comments from `#` or
//! `!`, double-quoted strings, and `include FILE` (relative to the including
//! file's directory, `*` and `?` allowed in the file name).

use std::path::{Path, PathBuf};

use crate::ImportError;
use crate::source::{Comment, Line, redact};

/// Includes nested deeper than this are refused (an include loop).
const MAX_INCLUDE_DEPTH: usize = 8;

/// One statement: its words, where it is, and its block if it opens one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    /// Keyword then arguments, quotes removed.
    pub words: Vec<String>,
    /// The source line.
    pub line: Line,
    /// The statements inside `{ ... }`, when the statement has a block.
    pub block: Option<Vec<Statement>>,
    /// The line of the block's `}`, when it is in the statement's file.
    pub end: Option<usize>,
}

impl Statement {
    /// The keyword.
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The argument at `index` (0 is the first after the keyword).
    pub fn arg(&self, index: usize) -> Option<&str> {
        self.words.get(index + 1).map(String::as_str)
    }

    /// The statements of the block (none when there is no block).
    pub fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// A token and the line it is on.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    /// `{` and `}` only count when not quoted.
    quoted: bool,
}

/// The tokens of one file's line, with the line itself.
struct SourceLine {
    line: Line,
    tokens: Vec<Token>,
}

/// A configuration read with its includes: the statement tree, and
/// comments on includes that matched or opened nothing.
pub(crate) struct Parsed {
    /// The top-level statements.
    pub statements: Vec<Statement>,
    /// Comments on include lines that brought nothing in.
    pub include_problems: Vec<Comment>,
}

/// The include keywords (keepalived's variants differ only in how strictly
/// keepalived itself reports problems).
const INCLUDE_KEYWORDS: &[&str] = &[
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// Reads `path` and the files it includes into a tree of statements.
pub(crate) fn read(path: &Path) -> Result<Parsed, ImportError> {
    let mut lines = Vec::new();
    let mut include_problems = Vec::new();
    let text = std::fs::read_to_string(path).map_err(|error| ImportError::Read {
        file: path.display().to_string(),
        error,
    })?;
    read_lines(path, &text, 0, &mut lines, &mut include_problems)?;
    Ok(Parsed {
        statements: build(&lines)?,
        include_problems,
    })
}

/// Appends the lines of `text`, read from `path`, to `lines`, the lines of
/// included files in place of their `include`. An included file that cannot
/// be read is a comment, as keepalived goes on without it.
fn read_lines(
    path: &Path,
    text: &str,
    depth: usize,
    lines: &mut Vec<SourceLine>,
    problems: &mut Vec<Comment>,
) -> Result<(), ImportError> {
    let name = path.display().to_string();
    for (index, raw) in text.lines().enumerate() {
        let syntax = |message: String| ImportError::Syntax {
            file: name.clone(),
            line: index + 1,
            message,
        };
        let tokens = tokenize(raw).map_err(syntax)?;
        let words: Vec<String> = tokens.iter().map(|token| token.text.clone()).collect();
        let line = Line {
            file: name.clone(),
            number: index + 1,
            text: redact(raw, &words),
        };
        let include = tokens
            .first()
            .is_some_and(|t| INCLUDE_KEYWORDS.contains(&t.text.as_str()) && !t.quoted);
        if !include {
            lines.push(SourceLine { line, tokens });
            continue;
        }
        let Some(pattern) = tokens.get(1) else {
            return Err(syntax("include needs a file".to_owned()));
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(syntax(format!(
                "includes nested more than {MAX_INCLUDE_DEPTH} deep (an include loop?)"
            )));
        }
        let directory = path.parent().unwrap_or(Path::new("."));
        let included = expand_include(directory, &pattern.text);
        if included.is_empty() {
            problems.push(line.note("matches no file, so it includes nothing"));
        }
        for file in included {
            match std::fs::read_to_string(&file) {
                Ok(text) => read_lines(&file, &text, depth + 1, lines, problems)?,
                Err(error) => problems
                    .push(line.untranslated(format!("cannot read {}: {error}", file.display()))),
            }
        }
    }
    Ok(())
}

/// The files an include names: relative to `directory` when relative, a
/// `*`/`?` pattern in the last component matched against that directory's
/// files (sorted, as glob(3) returns them). A pattern matching nothing
/// yields nothing, as in keepalived.
fn expand_include(directory: &Path, pattern: &str) -> Vec<PathBuf> {
    let path = directory.join(pattern);
    let Some(file_pattern) = path.file_name().and_then(|name| name.to_str()) else {
        return vec![path];
    };
    if !file_pattern.contains(['*', '?']) {
        return vec![path];
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut matches: Vec<PathBuf> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| !name.starts_with('.') && wildcard(file_pattern, name))
        })
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    matches.sort();
    matches
}

/// Whether `name` matches `pattern` with `*` (any run) and `?` (any one).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    // Positions in the pattern reachable after each character of the name.
    let mut states = vec![false; pattern.len() + 1];
    states[0] = true;
    let close = |states: &mut Vec<bool>| {
        for index in 0..pattern.len() {
            if states[index] && pattern[index] == '*' {
                states[index + 1] = true;
            }
        }
    };
    close(&mut states);
    for &c in &name {
        let mut next = vec![false; pattern.len() + 1];
        for index in 0..pattern.len() {
            if !states[index] {
                continue;
            }
            match pattern[index] {
                '*' => next[index] = true,
                '?' => next[index + 1] = true,
                literal if literal == c => next[index + 1] = true,
                _ => {}
            }
        }
        close(&mut next);
        states = next;
    }
    states[pattern.len()]
}

/// Splits one line into tokens: words, quoted strings, `{` and `}`; a `#`
/// or `!` outside quotes at the start of a token ends the line.
fn tokenize(raw: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = raw.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' | '!' => break,
            '{' | '}' => {
                chars.next();
                tokens.push(Token {
                    text: c.to_string(),
                    quoted: false,
                });
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' if chars.peek() == Some(&'"') => {
                            chars.next();
                            text.push('"');
                        }
                        c => text.push(c),
                    }
                }
                if !closed {
                    return Err("unterminated quoted string".to_owned());
                }
                tokens.push(Token { text, quoted: true });
            }
            _ => {
                let mut text = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '{' || c == '}' {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                tokens.push(Token {
                    text,
                    quoted: false,
                });
            }
        }
    }
    Ok(tokens)
}

/// An open block: the statement that opened it and what it holds so far.
struct Frame {
    opener: Option<Statement>,
    statements: Vec<Statement>,
}

/// Builds the statement tree from the lines.
fn build(lines: &[SourceLine]) -> Result<Vec<Statement>, ImportError> {
    let mut stack = vec![Frame {
        opener: None,
        statements: Vec::new(),
    }];
    let syntax = |line: &Line, message: &str| ImportError::Syntax {
        file: line.file.clone(),
        line: line.number,
        message: message.to_owned(),
    };
    for source in lines {
        let mut words: Vec<String> = Vec::new();
        for token in &source.tokens {
            let frame = stack.last_mut().expect("the top frame is never popped");
            match token.text.as_str() {
                "{" if !token.quoted => {
                    let opener = if words.is_empty() {
                        // `{` on a line of its own opens the previous statement's block.
                        match frame.statements.pop() {
                            Some(previous) if previous.block.is_none() => previous,
                            _ => return Err(syntax(&source.line, "`{` without a keyword")),
                        }
                    } else {
                        Statement {
                            words: std::mem::take(&mut words),
                            line: source.line.clone(),
                            block: None,
                            end: None,
                        }
                    };
                    stack.push(Frame {
                        opener: Some(opener),
                        statements: Vec::new(),
                    });
                }
                "}" if !token.quoted => {
                    if !words.is_empty() {
                        frame.statements.push(Statement {
                            words: std::mem::take(&mut words),
                            line: source.line.clone(),
                            block: None,
                            end: None,
                        });
                    }
                    if stack.len() == 1 {
                        return Err(syntax(&source.line, "`}` closes no block"));
                    }
                    let closed = stack.pop().expect("checked above");
                    let mut opener = closed.opener.expect("only the top frame has no opener");
                    opener.block = Some(closed.statements);
                    opener.end =
                        (opener.line.file == source.line.file).then_some(source.line.number);
                    stack
                        .last_mut()
                        .expect("the top frame is never popped")
                        .statements
                        .push(opener);
                }
                _ => words.push(token.text.clone()),
            }
        }
        if !words.is_empty() {
            stack
                .last_mut()
                .expect("the top frame is never popped")
                .statements
                .push(Statement {
                    words,
                    line: source.line.clone(),
                    block: None,
                    end: None,
                });
        }
    }
    if stack.len() > 1 {
        let unclosed = stack.pop().and_then(|frame| frame.opener);
        let line = unclosed.map(|statement| statement.line).unwrap_or(Line {
            file: String::new(),
            number: 0,
            text: String::new(),
        });
        return Err(syntax(&line, "this block is never closed with `}`"));
    }
    Ok(stack
        .pop()
        .map(|frame| frame.statements)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Statement>, ImportError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("keepalived.conf");
        std::fs::write(&path, text).unwrap();
        read(&path).map(|parsed| parsed.statements)
    }

    #[test]
    fn blocks_comments_and_quotes() {
        let statements = parse(
            "! comment\nvrrp_instance VI_1 {\n  state MASTER # trailing\n  virtual_ipaddress {\n    10.0.0.1/24 dev eth0\n  }\n  notify \"/bin/n a\"\n}\n",
        )
        .unwrap();
        assert_eq!(statements.len(), 1);
        let instance = &statements[0];
        assert_eq!(instance.words, ["vrrp_instance", "VI_1"]);
        assert_eq!(instance.line.number, 2);
        assert_eq!(instance.end, Some(8));
        let children = instance.children();
        assert_eq!(children[0].words, ["state", "MASTER"]);
        assert_eq!(
            children[1].children()[0].words,
            ["10.0.0.1/24", "dev", "eth0"]
        );
        assert_eq!(children[1].children()[0].line.number, 5);
        assert_eq!(children[2].words, ["notify", "/bin/n a"]);
    }

    #[test]
    fn a_brace_on_its_own_line_and_one_line_blocks() {
        let statements =
            parse("vrrp_instance X\n{\n  unicast_peer { 10.0.0.2 10.0.0.3 }\n}\n").unwrap();
        let peers = &statements[0].children()[0];
        assert_eq!(peers.keyword(), "unicast_peer");
        assert_eq!(peers.children()[0].words, ["10.0.0.2", "10.0.0.3"]);
    }

    #[test]
    fn unbalanced_braces_are_errors_with_their_line() {
        let error = parse("a {\n b\n").unwrap_err().to_string();
        assert!(
            error.ends_with("keepalived.conf:1: this block is never closed with `}`"),
            "{error}"
        );
        let error = parse("a\n}\n").unwrap_err().to_string();
        assert!(error.ends_with(":2: `}` closes no block"), "{error}");
    }

    #[test]
    fn includes_are_followed_relative_to_the_including_file() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::create_dir(directory.path().join("conf.d")).unwrap();
        std::fs::write(
            directory.path().join("conf.d/b.conf"),
            "vrrp_script b {\n}\n",
        )
        .unwrap();
        std::fs::write(
            directory.path().join("conf.d/a.conf"),
            "vrrp_script a {\n}\n",
        )
        .unwrap();
        let main = directory.path().join("keepalived.conf");
        std::fs::write(&main, "global_defs {\n}\ninclude conf.d/*.conf\n").unwrap();
        let statements = read(&main).unwrap().statements;
        let names: Vec<&str> = statements.iter().map(|s| s.arg(0).unwrap_or("")).collect();
        assert_eq!(names, ["", "a", "b"]);
        assert!(statements[1].line.file.ends_with("conf.d/a.conf"));
    }

    #[test]
    fn includes_that_bring_nothing_are_comments() {
        let directory = tempfile::tempdir().unwrap();
        let main = directory.path().join("keepalived.conf");
        std::fs::write(&main, "include missing.conf\ninclude conf.d/*.conf\n").unwrap();
        let parsed = read(&main).unwrap();
        assert!(parsed.statements.is_empty());
        let problems: Vec<&str> = parsed.include_problems.iter().map(Comment::text).collect();
        let file = main.display();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!(
                "hafront import: {file}:1: include missing.conf — not translated: cannot read "
            )),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            format!(
                "hafront import: {file}:2: include conf.d/*.conf — matches no file, so it includes nothing"
            )
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.conf.bak"));
        assert!(wildcard("vrrp-?.conf", "vrrp-1.conf"));
        assert!(wildcard("*", "x"));
    }
}
