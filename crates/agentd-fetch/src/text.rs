//! Plain text as the agent reads it: line endings made `\n`, trailing blanks trimmed, and the
//! whole cut to the output limit.

/// How far back from the limit a cut looks for a line break to end on.
const CUT_SLACK_CHARS: usize = 2_000;

/// Normalises line endings (`\r\n` and lone `\r` become `\n`) and trims the text's ends.
pub(crate) fn tidy(text: &str) -> String {
    let text = if text.contains('\r') { text.replace("\r\n", "\n").replace('\r', "\n") } else { text.to_owned() };
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
    if trimmed.len() == text.len() { text } else { trimmed.to_owned() }
}

/// Cuts `text` to at most `max_chars` characters, at a line break when one is within the last
/// couple of thousand characters before the limit. Whether it cut.
pub(crate) fn cut_to(text: &mut String, max_chars: usize) -> bool {
    let Some((limit, _)) = text.char_indices().nth(max_chars) else { return false };
    let window_start = text[..limit].char_indices().rev().nth(CUT_SLACK_CHARS).map_or(0, |(i, _)| i);
    let end = text[window_start..limit].rfind('\n').map_or(limit, |i| window_start + i);
    text.truncate(end);
    let kept = text.trim_end().len();
    text.truncate(kept);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_end_at_a_line_break_near_the_limit_or_at_the_limit() {
        let mut text = "first line\nsecond line\nthird".to_owned();
        assert!(cut_to(&mut text, 15));
        assert_eq!(text, "first line");
        let mut long = "é".repeat(10);
        assert!(cut_to(&mut long, 4));
        assert_eq!(long, "éééé");
        let mut short = "short".to_owned();
        assert!(!cut_to(&mut short, 5));
        assert_eq!(short, "short");
    }

    #[test]
    fn line_endings_are_normalised() {
        assert_eq!(tidy("\u{FEFF}a\r\nb\rc\n\n"), "a\nb\nc");
    }
}
