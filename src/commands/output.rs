//! How commands show things to a person: errors as one line, a closed pipe
//! as a quiet end, times as minutes.

use crate::domain::clock::{Millis, rfc3339};

/// The error as one line: each cause of its chain once, outermost first,
/// with what [`escape_for_terminal`] escapes escaped (an error may quote a
/// line of a file or a value a customer wrote).
///
/// Our errors often name their source in their own message (so a log line
/// that shows only `{e}` still has the cause) and also return it as
/// `source()`: printing the chain as is would repeat it two to four times.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        // Some drivers repeat a prefix inside one message
        // ("error with configuration: error with configuration: …").
        let mut segments: Vec<&str> = Vec::new();
        let text = cause.to_string();
        for seg in text.split(": ") {
            if segments.last() != Some(&seg) {
                segments.push(seg);
            }
        }
        let msg = segments.join(": ");
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
    }
    escape_for_terminal(&parts.join(": "))
}

/// Whether the error is a closed standard output (the reader of a pipe went
/// away, as with `| head`): the command then stops quietly with status 0,
/// as other Unix tools do. A broken pipe to the database or to a platform
/// is not one: it is a failure, which must not end as a success.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let elsewhere = e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>().is_some() || c.downcast_ref::<reqwest::Error>().is_some()
    });
    !elsewhere
        && e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                || c.downcast_ref::<serde_json::Error>()
                    .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
        })
}

/// Whether `c` would change how the rest of a line shows on a terminal,
/// or hide what is there: a control character (C0 or C1: escape
/// sequences, line breaks), an explicit bidi control (embeddings,
/// overrides, isolates, marks), which reorders what follows it, the line
/// and paragraph separators, and the invisible format characters (zero
/// widths, the soft hyphen, word joiners, tags, interlinear annotations),
/// which can hide text between what shows. Not the zero-width joiner nor
/// the variation selectors, without which most emoji sequences fall
/// apart; the tags do go, though the flags of England, Scotland and Wales
/// are made with them (they show as a black flag): they can spell a
/// whole hidden message.
pub fn is_unsafe_on_a_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}' | '\u{200C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// `text` with every character [`is_unsafe_on_a_terminal`] but the line
/// feed and the tab written as its escape (`\u{202e}`): for messages that
/// quote what a customer or a file wrote. Line breaks stay, as some
/// messages are laid out on several lines (a rule file's error, with the
/// line it quotes and a caret under the column).
pub fn escape_for_terminal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_unsafe_on_a_terminal(c) && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A time in a table, to the minute (`2026-03-02 14:05`), or `-` for none:
/// agents compare times at a glance; seconds would only widen the column.
pub fn when(ms: Option<Millis>) -> String {
    ms.map(|m| rfc3339(m)[..16].replace('T', " "))
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_printed_once_and_a_closed_pipe_is_recognised() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open the database x: {0}; check it")]
        struct Outer(#[source] std::io::Error);
        let io = std::io::Error::other("cfg: cfg: bad value");
        let e = anyhow::Error::new(Outer(io)).context("the bot could not start");
        assert_eq!(
            render_error(&e),
            "the bot could not start: cannot open the database x: cfg: bad value; check it"
        );
        assert!(!is_broken_pipe(&e));
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the list");
        assert!(is_broken_pipe(&pipe));
        let database = anyhow::Error::new(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        )))
        .context("reading the messages");
        assert!(
            !is_broken_pipe(&database),
            "the database's pipe is a failure"
        );
    }

    #[test]
    fn quoted_text_cannot_drive_the_terminal() {
        assert_eq!(
            escape_for_terminal("a\u{202e}b\u{1b}[2J\u{9b}c é\r\n\t^"),
            "a\\u{202e}b\\u{1b}[2J\\u{9b}c é\\u{d}\n\t^"
        );
        assert!(!is_unsafe_on_a_terminal('é') && is_unsafe_on_a_terminal('\u{2066}'));
        assert!(
            is_unsafe_on_a_terminal('\u{2028}')
                && is_unsafe_on_a_terminal('\u{200b}')
                && is_unsafe_on_a_terminal('\u{e0041}')
        );
        assert!(!is_unsafe_on_a_terminal('\u{200d}') && !is_unsafe_on_a_terminal('\u{fe0f}'));
    }

    #[test]
    fn times_are_shown_to_the_minute() {
        assert_eq!(when(Some(0)), "1970-01-01 00:00");
        assert_eq!(when(None), "-");
    }
}
