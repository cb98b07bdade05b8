//! nginx's configuration syntax: a tokenizer and a parser into a tree of
//! directives, for reading a hand-written site.
//!
//! Follows the rules of nginx's own reader (`ngx_conf_read_token` in
//! `src/core/ngx_conf_file.c`): a directive is words ended by `;`, or by a
//! `{ ... }` block; words are separated by blanks; `#` starts a comment only
//! where a word could start; `"..."` and `'...'` quote, and a quoted word must
//! be followed by a blank, `;`, `{` or `)` (which starts the next word); a
//! backslash escapes the next character (`\"`, `\'`, `\\`, `\t`, `\r`, `\n`
//! are unescaped, any other keeps its backslash); `${name}` inside a word is
//! a variable, not a block. Lines are counted from 1. Blocks nest at most
//! [`MAX_DEPTH`] deep.
//!
//! Not done here: `include` is not followed (the directive is kept like any
//! other), no directive is known or checked, and the bodies of Lua blocks
//! (`*_by_lua_block`) are read as nginx syntax, which they are not.

use std::fmt;

/// How deep blocks may nest. nginx's own contexts nest a few levels (http,
/// server, location, a nested location, `if`); the limit keeps a crafted
/// file from exhausting the stack of whatever walks the tree.
pub const MAX_DEPTH: usize = 100;

/// One directive: its name, its arguments, and its block if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    /// The line the name is on.
    pub line: usize,
    /// The directives inside `{ ... }`; `None` for a directive ended by `;`.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// The directives of the block, or none.
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// Why a text is not nginx configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct SyntaxError {
    pub line: usize,
    pub kind: SyntaxErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxErrorKind {
    #[error("unexpected `}}` with no block open; remove it or add the block's opening")]
    UnexpectedClose,
    #[error("unexpected `{0}` with no directive name before it")]
    MissingName(char),
    #[error("unexpected `}}` after `{0}`, which needs a `;` first")]
    CloseAfterWords(String),
    #[error("unexpected end of file in the block opened on line {0}; add the missing `}}`")]
    UnclosedBlock(usize),
    #[error("unexpected end of file after `{0}`; end the directive with `;`")]
    UnendedDirective(String),
    #[error("the quote opened on line {0} is not closed")]
    UnclosedQuote(usize),
    #[error("unexpected `{0}` right after a quoted word; put a blank between them")]
    AfterQuote(char),
    #[error("blocks nest more than {0} deep here, which no nginx configuration needs; close the blocks that are open")]
    TooDeep(usize),
}

/// A token of nginx's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Semicolon,
    Open,
    Close,
}

/// Splits `text` into tokens with their lines.
fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, SyntaxError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let err = |line, kind| Err(SyntaxError { line, kind });
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            ' ' | '\t' | '\r' => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                chars.next();
                tokens.push((Token::Semicolon, line));
            }
            '{' => {
                chars.next();
                tokens.push((Token::Open, line));
            }
            '}' => {
                chars.next();
                tokens.push((Token::Close, line));
            }
            '"' | '\'' => {
                let quote = c;
                let start = line;
                chars.next();
                let mut raw = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            raw.push('\\');
                            if let Some(next) = chars.next() {
                                if next == '\n' {
                                    line += 1;
                                }
                                raw.push(next);
                            }
                        }
                        c if c == quote => {
                            closed = true;
                            break;
                        }
                        c => {
                            if c == '\n' {
                                line += 1;
                            }
                            raw.push(c);
                        }
                    }
                }
                if !closed {
                    return err(start, SyntaxErrorKind::UnclosedQuote(start));
                }
                match chars.peek() {
                    // `)` is allowed for `if ($x = "y")`, and starts a word.
                    None | Some(' ' | '\t' | '\r' | '\n' | ';' | '{' | ')') => {}
                    Some(&other) => return err(line, SyntaxErrorKind::AfterQuote(other)),
                }
                tokens.push((Token::Word(unescape(&raw)), start));
            }
            _ => {
                let start = line;
                let mut raw = String::new();
                let mut variable = false;
                while let Some(&c) = chars.peek() {
                    match c {
                        ' ' | '\t' | '\r' | '\n' | ';' => break,
                        // `${name}`: the brace belongs to the variable.
                        '{' if variable => {}
                        '{' => break,
                        _ => {}
                    }
                    chars.next();
                    variable = c == '$';
                    if c == '\\' {
                        raw.push('\\');
                        if let Some(next) = chars.next() {
                            if next == '\n' {
                                line += 1;
                            }
                            raw.push(next);
                        }
                        continue;
                    }
                    raw.push(c);
                }
                tokens.push((Token::Word(unescape(&raw)), start));
            }
        }
    }
    Ok(tokens)
}

/// Undoes the escapes nginx undoes; any other backslash stays.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(q @ ('"' | '\'' | '\\')) => out.push(q),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses a configuration text into its top-level directives.
///
/// # Errors
///
/// The first place where the text is not nginx syntax.
pub fn parse(text: &str) -> Result<Vec<Directive>, SyntaxError> {
    let tokens = tokenize(text)?;
    // Each open block: the directive that owns it and what it holds so far.
    let mut stack: Vec<(Directive, Vec<Directive>)> = Vec::new();
    let mut top: Vec<Directive> = Vec::new();
    let mut words: Vec<(String, usize)> = Vec::new();
    let end_line = tokens.last().map_or(1, |(_, line)| *line);
    for (token, line) in tokens {
        match token {
            Token::Word(word) => words.push((word, line)),
            Token::Semicolon | Token::Open => {
                let opens = token == Token::Open;
                let mut taken = std::mem::take(&mut words).into_iter();
                let Some((name, name_line)) = taken.next() else {
                    return Err(SyntaxError {
                        line,
                        kind: SyntaxErrorKind::MissingName(if opens { '{' } else { ';' }),
                    });
                };
                let directive = Directive {
                    name,
                    args: taken.map(|(w, _)| w).collect(),
                    line: name_line,
                    block: None,
                };
                if opens {
                    if stack.len() == MAX_DEPTH {
                        return Err(SyntaxError {
                            line,
                            kind: SyntaxErrorKind::TooDeep(MAX_DEPTH),
                        });
                    }
                    stack.push((directive, Vec::new()));
                } else {
                    match stack.last_mut() {
                        Some((_, children)) => children.push(directive),
                        None => top.push(directive),
                    }
                }
            }
            Token::Close => {
                if let Some((word, _)) = words.first() {
                    return Err(SyntaxError {
                        line,
                        kind: SyntaxErrorKind::CloseAfterWords(word.clone()),
                    });
                }
                let Some((mut directive, children)) = stack.pop() else {
                    return Err(SyntaxError {
                        line,
                        kind: SyntaxErrorKind::UnexpectedClose,
                    });
                };
                directive.block = Some(children);
                match stack.last_mut() {
                    Some((_, siblings)) => siblings.push(directive),
                    None => top.push(directive),
                }
            }
        }
    }
    if let Some((word, line)) = words.first() {
        return Err(SyntaxError {
            line: *line,
            kind: SyntaxErrorKind::UnendedDirective(word.clone()),
        });
    }
    if let Some((open, _)) = stack.last() {
        return Err(SyntaxError {
            line: end_line,
            kind: SyntaxErrorKind::UnclosedBlock(open.line),
        });
    }
    Ok(top)
}

impl fmt::Display for Directive {
    /// The directive's head as written, for messages: `proxy_pass http://x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, args: &[&str], line: usize) -> Directive {
        Directive {
            name: name.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            line,
            block: None,
        }
    }

    #[test]
    fn directives_blocks_and_lines() {
        let text = "user www-data;\nhttp {\n  server {\n    listen 443 ssl;\n  }\n}\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], d("user", &["www-data"], 1));
        let http = &parsed[1];
        assert_eq!((http.name.as_str(), http.line), ("http", 2));
        let server = &http.children()[0];
        assert_eq!(server.children(), [d("listen", &["443", "ssl"], 4)]);
    }

    #[test]
    fn comments_start_only_where_a_word_could() {
        let parsed = parse("# top\nset $a b#c; # trailing\n#last").unwrap();
        assert_eq!(parsed, [d("set", &["$a", "b#c"], 2)]);
    }

    #[test]
    fn quotes_and_escapes_follow_nginx() {
        let parsed =
            parse("add_header X \"a \\\"b\\\" ; {c}\";\nreturn 200 'it''s';\nx a\\;b \"\\d\";");
        // `'it''s'`: a quoted word must be followed by a blank.
        assert_eq!(
            parsed.unwrap_err(),
            SyntaxError {
                line: 2,
                kind: SyntaxErrorKind::AfterQuote('\'')
            }
        );
        let parsed = parse("add_header X \"a \\\"b\\\" ; {c}\";\nx a\\;b \"\\d\\n\";").unwrap();
        assert_eq!(parsed[0].args, ["X", "a \"b\" ; {c}"]);
        assert_eq!(parsed[1].args, ["a\\;b", "\\d\n"]);
    }

    #[test]
    fn variables_in_braces_are_not_blocks() {
        let parsed = parse("proxy_pass http://${up}stream;\nlocation /a{ }").unwrap();
        assert_eq!(parsed[0].args, ["http://${up}stream"]);
        assert_eq!(parsed[1].args, ["/a"]);
        assert_eq!(parsed[1].block.as_deref(), Some(&[][..]));
    }

    #[test]
    fn quoted_word_may_span_lines_and_lines_still_count() {
        let parsed = parse("a \"x\ny\";\nb;").unwrap();
        assert_eq!(parsed[0].args, ["x\ny"]);
        assert_eq!(parsed[1].line, 3);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&str, usize, SyntaxErrorKind); 7] = [
            ("a;\n}\n", 2, SyntaxErrorKind::UnexpectedClose),
            ("http {\n  server {\n", 2, SyntaxErrorKind::UnclosedBlock(2)),
            (
                "http {\n listen 80\n}",
                3,
                SyntaxErrorKind::CloseAfterWords("listen".into()),
            ),
            (
                "a;\nlisten 80",
                2,
                SyntaxErrorKind::UnendedDirective("listen".into()),
            ),
            ("a;\n;", 2, SyntaxErrorKind::MissingName(';')),
            ("{ }", 1, SyntaxErrorKind::MissingName('{')),
            ("a \"b;\n", 1, SyntaxErrorKind::UnclosedQuote(1)),
        ];
        for (text, line, kind) in cases {
            assert_eq!(parse(text), Err(SyntaxError { line, kind }), "{text:?}");
        }
    }

    #[test]
    fn a_quoted_word_may_be_followed_by_a_parenthesis() {
        // nginx lets `)` follow a quoted word, for `if ($x = "y")`; the `)`
        // starts a word of its own.
        let parsed = parse("if ($request_method = \"POST\") {\n  return 405;\n}\n").unwrap();
        assert_eq!(parsed[0].args, ["($request_method", "=", "POST", ")"]);
        assert_eq!(parsed[0].children(), [d("return", &["405"], 2)]);
    }

    #[test]
    fn blocks_nested_too_deep_are_refused_without_overflowing_the_stack() {
        let depth = 100_000;
        let text = format!("{}{}", "a {\n".repeat(depth), "}\n".repeat(depth));
        assert_eq!(
            parse(&text),
            Err(SyntaxError {
                line: MAX_DEPTH + 1,
                kind: SyntaxErrorKind::TooDeep(MAX_DEPTH)
            })
        );
        let text = format!("{}{}", "a {\n".repeat(MAX_DEPTH), "}\n".repeat(MAX_DEPTH));
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn empty_and_blank_texts_have_no_directives() {
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("  \n# only a comment\n\t"), Ok(vec![]));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A crude fuzz: every prefix of a text full of special characters.
        let text = "a{b\"c\\'d;}e#f\n${g}h\\\n'i\"j{{}};;\u{0}\u{1F600}";
        for end in text.char_indices().map(|(i, _)| i) {
            let _ = parse(&text[..end]);
        }
    }
}
