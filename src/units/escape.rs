//! How a value is written into a unit line so that systemd reads back what
//! was meant: no control character may end the line, `%` is a specifier
//! (systemd.unit(5) "Specifiers"), and a command line has its own quoting
//! (systemd.service(5) "Command lines").
//!
//! Shared by every kind of unit. What a `ListenStream=` line does to its
//! text, and which socket paths no escape mends, is `socket`'s.

/// Collapses control characters so a value cannot start a new unit line.
pub(super) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escapes `%` specifiers (systemd.unit(5) "Specifiers").
pub(super) fn escape_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// One word of a command line (systemd.service(5) "Command lines"): quoted when
/// it holds whitespace or quotes, with `%` and `$` escaped.
pub(super) fn quote_arg(word: &str) -> String {
    let word = escape_specifiers(&one_line(word)).replace('$', "$$");
    if word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\;".contains(c))
    {
        let inner = word.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{inner}\"")
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_words_are_quoted_and_escaped() {
        assert_eq!(quote_arg("/etc/mas/config.yaml"), "/etc/mas/config.yaml");
        assert_eq!(
            quote_arg("/etc/my mas/100%.yaml"),
            "\"/etc/my mas/100%%.yaml\""
        );
        assert_eq!(quote_arg("/etc/$HOME"), "/etc/$$HOME");
    }
}
