//! Line splitting and tokenizing with OpenVPN's rules (`parse_line` and the inline-file reader of
//! `options_parse.c`): whitespace separates tokens, `#`/`;` start a comment where a token could
//! start, `"..."` groups with `\\`, `\"` and `\ ` escapes, `'...'` groups literally, a leading `--`
//! on the directive is dropped, and a line holding only `<tag>` opens an inline block that runs to
//! the first line starting (after blanks) with `</tag>`.

/// One directive as written: its name, its arguments and, for `<tag>` blocks, the block text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawDirective {
    /// 1-based line of the directive (of the opening tag for blocks).
    pub(crate) line: usize,
    /// Directive name without a leading `--`.
    pub(crate) name: String,
    /// Arguments (empty for blocks).
    pub(crate) args: Vec<String>,
    /// Block content (`<name>` ... `</name>`), lines joined with `\n`, each line kept verbatim
    /// except for a trailing `\r`.
    pub(crate) inline: Option<String>,
}

/// A syntax error: 1-based line and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Line of the problem.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

/// Splits `text` into directives. `first_line` is the line number of the first line of `text`
/// (1 for a whole file, more for the body of a `<connection>` block).
pub(crate) fn split_directives(
    text: &str,
    first_line: usize,
) -> Result<Vec<RawDirective>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = first_line + i;
        let mut tokens = tokenize(lines[i]).map_err(|message| SyntaxError {
            line: line_no,
            message,
        })?;
        i += 1;
        if tokens.is_empty() {
            continue;
        }
        if let Some(stripped) = tokens[0].strip_prefix("--") {
            tokens[0] = stripped.to_owned();
        }
        let first = &tokens[0];
        if tokens.len() == 1 && first.len() >= 2 && first.starts_with('<') && first.ends_with('>') {
            let name = first[1..first.len() - 1].to_owned();
            if name.starts_with('/') {
                return Err(SyntaxError {
                    line: line_no,
                    message: format!("'{first}' closes a block that was never opened"),
                });
            }
            let close = format!("</{name}>");
            let mut body = String::new();
            let mut closed = false;
            while i < lines.len() {
                let l = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
                i += 1;
                if l.trim_start().starts_with(&close) {
                    closed = true;
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            if !closed {
                return Err(SyntaxError {
                    line: line_no,
                    message: format!("'<{name}>' block has no closing '{close}'"),
                });
            }
            out.push(RawDirective {
                line: line_no,
                name,
                args: Vec::new(),
                inline: Some(body),
            });
            continue;
        }
        let name = tokens.remove(0);
        out.push(RawDirective {
            line: line_no,
            name,
            args: tokens,
            inline: None,
        });
    }
    Ok(out)
}

/// OpenVPN's `space()`: NUL or C `isspace`.
fn is_space(c: char) -> bool {
    matches!(c, '\0' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    Unquoted,
    Quoted,
    SingleQuoted,
}

/// Splits one line into tokens, following OpenVPN's `parse_line` state machine.
pub(crate) fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut state = State::Initial;
    let mut backslash = false;
    let mut cur = String::new();
    for c in line.chars().chain(std::iter::once('\0')) {
        let mut out = None;
        if !backslash && c == '\\' && state != State::SingleQuoted {
            backslash = true;
            continue;
        }
        let mut done = false;
        match state {
            State::Initial => {
                if !is_space(c) {
                    if c == ';' || c == '#' {
                        break;
                    }
                    if !backslash && c == '"' {
                        state = State::Quoted;
                    } else if !backslash && c == '\'' {
                        state = State::SingleQuoted;
                    } else {
                        out = Some(c);
                        state = State::Unquoted;
                    }
                }
            }
            State::Unquoted => {
                if !backslash && is_space(c) {
                    done = true;
                } else {
                    out = Some(c);
                }
            }
            State::Quoted => {
                if !backslash && c == '"' {
                    done = true;
                } else {
                    out = Some(c);
                }
            }
            State::SingleQuoted => {
                if c == '\'' {
                    done = true;
                } else {
                    out = Some(c);
                }
            }
        }
        if done {
            tokens.push(std::mem::take(&mut cur));
            state = State::Initial;
        }
        let is_escape = |o: char| o == '\\' || o == '"' || is_space(o);
        if let Some(o) = out.filter(|&o| backslash && o != '\0' && !is_escape(o)) {
            return Err(format!(
                "bad backslash: '\\{o}' is not an escape (write '\\\\' for a backslash, \
                 e.g. in Windows paths)"
            ));
        }
        backslash = false;
        if let Some(o) = out.filter(|&o| o != '\0') {
            cur.push(o);
        }
    }
    match state {
        State::Initial => Ok(tokens),
        State::Quoted => Err("no closing quotation mark (\")".to_owned()),
        State::SingleQuoted => Err("no closing single quotation mark (')".to_owned()),
        State::Unquoted => Err("line ends with a lone backslash".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        tokenize(s).unwrap()
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            t("remote  vpn.example.com\t1194 udp"),
            ["remote", "vpn.example.com", "1194", "udp"]
        );
        assert!(t("   ").is_empty());
        assert!(t("").is_empty());
        assert_eq!(t("verb 3\r"), ["verb", "3"]);
    }

    #[test]
    fn comments() {
        assert!(t("# remote a").is_empty());
        assert!(t("; remote a").is_empty());
        assert!(t("   # indented").is_empty());
        assert_eq!(t("remote a # trailing"), ["remote", "a"]);
        assert_eq!(t("remote a ;trailing"), ["remote", "a"]);
        // Inside a token, # and ; are ordinary characters.
        assert_eq!(t("auth-user-pass pa#ss;x"), ["auth-user-pass", "pa#ss;x"]);
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(
            t(r#"pull-filter ignore "route 10.""#),
            ["pull-filter", "ignore", "route 10."]
        );
        assert_eq!(t(r#"x "a \"b\" c""#), ["x", r#"a "b" c"#]);
        assert_eq!(t(r#"x "C:\\dir\\f.key""#), ["x", r"C:\dir\f.key"]);
        assert_eq!(t(r"x a\ b"), ["x", "a b"]);
        assert_eq!(t(r"x a\\b"), ["x", r"a\b"]);
        assert_eq!(t(r#"x \"q"#), ["x", "\"q"]);
        assert_eq!(t(r#"x """#), ["x", ""]);
        assert_eq!(t(r##"x "# not a comment""##), ["x", "# not a comment"]);
        // A closing quote ends the token.
        assert_eq!(t(r#"x "ab"cd"#), ["x", "ab", "cd"]);
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(t(r"x 'a \b c'"), ["x", r"a \b c"]);
        assert_eq!(t(r#"x 'say "hi"'"#), ["x", r#"say "hi""#]);
    }

    #[test]
    fn syntax_errors() {
        assert!(
            tokenize(r#"x "open"#)
                .unwrap_err()
                .contains("closing quotation")
        );
        assert!(tokenize("x 'open").unwrap_err().contains("single"));
        assert!(tokenize(r"x C:\dir").unwrap_err().contains("backslash"));
        assert!(tokenize(r"x a\").is_err());
    }

    #[test]
    fn directives_and_blocks() {
        let text = "\u{feff}--client\n\
                    <ca>\n\
                    -----BEGIN CERTIFICATE-----\r\n\
                    \x20 AAAA\n\
                    -----END CERTIFICATE-----\n\
                    \x20 </ca>\n\
                    verb 3\n";
        let d = split_directives(text, 1).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].name, "client");
        assert_eq!(d[0].line, 1);
        assert_eq!(d[1].name, "ca");
        assert_eq!(d[1].line, 2);
        assert_eq!(
            d[1].inline.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\n  AAAA\n-----END CERTIFICATE-----\n")
        );
        assert_eq!(d[2].name, "verb");
        assert_eq!(d[2].line, 7);
        assert_eq!(d[2].args, ["3"]);
    }

    #[test]
    fn block_errors() {
        let e = split_directives("client\n<key>\nabc\n", 1).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("</key>"));
        let e = split_directives("client\n</key>\n", 10).unwrap_err();
        assert_eq!(e.line, 11);
    }
}
