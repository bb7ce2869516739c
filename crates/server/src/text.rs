//! What text from outside may hold, in one place: the rule for names people see
//! (display names, group titles) and for message bodies. Every place a name or a
//! body enters the system calls these, so a name that passes at sign-up cannot be
//! refused at rename, or the other way round.
//!
//! A name is shown beside other people's words, so it must not be able to disguise
//! itself or what follows it: no control characters (a NUL also cannot be stored in
//! PostgreSQL text), no bidirectional overrides, embeddings, isolates or marks (which
//! turn `Admin\u{202e}gnp.exe` into "Adminexe.png"), and at least one visible character
//! (not only spaces, zero-width or other default-ignorable characters). A body may run
//! over lines, so it keeps `\n`, `\t` and `\r` but no other control character.

use chat_protocol::ErrorCode;

use crate::error::{AppError, AppResult};

/// Why a name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// Longer than allowed, or empty once trimmed.
    Length,
    /// A C0 or C1 control character, or a line or paragraph separator.
    Control,
    /// A bidirectional override, embedding, isolate or mark.
    Bidi,
    /// Nothing visible: only whitespace and default-ignorable characters.
    Invisible,
}

/// Checks a name people see (`what` names it in the error, e.g. "a display name") and
/// returns it trimmed: 1 to `max_chars` characters, none of them control or
/// bidirectional-control characters, at least one visible.
pub fn check_name(what: &str, name: &str, max_chars: usize) -> AppResult<String> {
    match name_problem(name, max_chars) {
        None => Ok(name.trim().to_owned()),
        Some(problem) => {
            let message = match problem {
                NameProblem::Length => format!("{what} has 1 to {max_chars} characters"),
                NameProblem::Control => format!("{what} cannot contain control characters"),
                NameProblem::Bidi => format!(
                    "{what} cannot contain bidirectional text controls \
                     (U+202A to U+202E, U+2066 to U+2069, U+200E, U+200F, U+061C)"
                ),
                NameProblem::Invisible => {
                    format!("{what} needs a visible character, not only spaces or invisible ones")
                }
            };
            Err(AppError::invalid(ErrorCode::InvalidInput, message))
        }
    }
}

/// What is wrong with a name, if anything (see [`check_name`]).
pub fn name_problem(name: &str, max_chars: usize) -> Option<NameProblem> {
    let name = name.trim();
    if name.chars().any(|c| c.is_control() || is_line_separator(c)) {
        return Some(NameProblem::Control);
    }
    if name.chars().any(is_bidi_control) {
        return Some(NameProblem::Bidi);
    }
    let count = name.chars().count();
    if count == 0 || count > max_chars {
        return Some(NameProblem::Length);
    }
    if name.chars().all(is_invisible) {
        return Some(NameProblem::Invisible);
    }
    None
}

/// A message body may hold any character but a control character other than a line
/// feed, a tab or a carriage return.
pub fn check_body_characters(body: &str) -> AppResult<()> {
    if body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            "a message body cannot contain control characters other than newline, tab \
             and carriage return",
        ));
    }
    Ok(())
}

fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// The characters that change the direction of the text around them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Whitespace, Unicode's default-ignorable code points (rendered as nothing), and the
/// blank characters that fonts draw empty (Hangul fillers, the Braille blank).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(name: &str) -> Option<NameProblem> {
        name_problem(name, 64)
    }

    #[test]
    fn ordinary_names_pass_trimmed() {
        for ok in [
            "Ada L.",
            "Zoë",
            "李小龙",
            "محمد",
            "שלום",
            "👩‍💻 dev",
            "a\u{200d}b",
            "x",
        ] {
            assert_eq!(problem(ok), None, "{ok:?}");
        }
        assert_eq!(check_name("a display name", "  Ada  ", 64).unwrap(), "Ada");
    }

    #[test]
    fn control_characters_are_refused_in_names() {
        for bad in [
            "nul\u{0}",
            "bell\u{7}",
            "tab\there",
            "line\nbreak",
            "cr\rx",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}x",
            "c1\u{9b}",
            "sep\u{2028}x",
            "para\u{2029}x",
        ] {
            assert_eq!(problem(bad), Some(NameProblem::Control), "{bad:?}");
        }
    }

    #[test]
    fn bidirectional_controls_are_refused_in_names() {
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}'])
        {
            let name = format!("Admin{c}gnp.exe");
            assert_eq!(
                problem(&name),
                Some(NameProblem::Bidi),
                "U+{:04X}",
                c as u32
            );
        }
        assert_eq!(
            check_name("a display name", "Admin\u{202e}gnp.exe", 64)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn names_with_nothing_visible_are_refused() {
        for bad in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}",
            "\u{FEFF}",
            "\u{00AD}",
            "\u{3164}",
            "\u{115F}\u{1160}",
            "\u{2800}",
            "\u{FE0F}",
            "\u{E0020}\u{E007F}",
            " \u{200B} ",
        ] {
            assert_eq!(problem(bad), Some(NameProblem::Invisible), "{bad:?}");
        }
        for bad in ["", "   ", "\u{3000}", "\u{00A0}\u{3000}"] {
            assert_eq!(problem(bad), Some(NameProblem::Length), "{bad:?}");
        }
    }

    #[test]
    fn names_have_a_length_in_characters() {
        assert_eq!(name_problem(&"é".repeat(64), 64), None);
        assert_eq!(name_problem(&"é".repeat(65), 64), Some(NameProblem::Length));
    }

    #[test]
    fn bodies_keep_newlines_tabs_and_carriage_returns_but_no_other_control() {
        assert!(check_body_characters("line one\r\nline two\tcolumn").is_ok());
        assert!(check_body_characters("emoji 👍 and rtl \u{202e} text").is_ok());
        for bad in [
            "nul \u{0} byte",
            "\u{1}",
            "bell\u{7}",
            "back\u{8}space",
            "vt\u{b}",
            "ff\u{c}",
            "esc\u{1b}[2J",
            "\u{7f}",
            "c1\u{80}",
            "\u{9f}",
        ] {
            assert_eq!(
                check_body_characters(bad).unwrap_err().code(),
                ErrorCode::InvalidInput,
                "{bad:?}"
            );
        }
    }
}
