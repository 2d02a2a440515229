//! Cutting a long text into pieces a speech endpoint takes, at sentence ends where it can.

/// `text` in pieces of at most `max_chars` characters, each ending at the last sentence end
/// (`.`, `!`, `?`, `…` or a line break, followed by white space) that fits, else at the last
/// white space, else mid-word; pieces are trimmed and none is empty.
pub(crate) fn split_for_speech(text: &str, max_chars: usize) -> Vec<&str> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            pieces.push(rest);
            break;
        };
        // `limit` is the byte index of the first character that does not fit.
        let window = &rest[..limit];
        let next_is_space = rest[limit..].starts_with(char::is_whitespace);
        let cut = sentence_end(window, next_is_space)
            .or_else(|| if next_is_space { Some(limit) } else { window.rfind(char::is_whitespace) })
            .filter(|&cut| !window[..cut].trim().is_empty())
            .unwrap_or(limit);
        pieces.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    pieces
}

/// The byte index just after the last sentence end in `window` followed by white space (or by
/// the end of the window when the text goes on with white space).
fn sentence_end(window: &str, next_is_space: bool) -> Option<usize> {
    let mut best = None;
    let mut chars = window.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let end = at + c.len_utf8();
        let followed_by_space = match chars.peek() {
            Some((_, next)) => next.is_whitespace(),
            None => next_is_space,
        };
        if c == '\n' || (matches!(c, '.' | '!' | '?' | '…') && followed_by_space) {
            best = Some(end);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_for_speech("  Hello there.  ", 100), ["Hello there."]);
        assert!(split_for_speech("   ", 100).is_empty());
        let exact = "a".repeat(100);
        assert_eq!(split_for_speech(&exact, 100), [exact.as_str()]);
    }

    #[test]
    fn pieces_end_at_sentences_then_words_then_anywhere() {
        let text = "One two. Three four five! Six seven eight nine ten.";
        assert_eq!(split_for_speech(text, 30), ["One two. Three four five!", "Six seven eight nine ten."]);
        // No sentence end in the window: the last space.
        assert_eq!(split_for_speech("alpha beta gamma delta", 12), ["alpha beta", "gamma delta"]);
        // A sentence end right at the limit (the text goes on with a space).
        assert_eq!(split_for_speech("Short one. Next", 10), ["Short one.", "Next"]);
        // A decimal point is no sentence end.
        assert_eq!(split_for_speech("Pi is 3.14159 or so", 14), ["Pi is 3.14159", "or so"]);
        // One long word: cut mid-word.
        assert_eq!(split_for_speech("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(split_for_speech("Line one\nline two", 12), ["Line one", "line two"]);
    }

    #[test]
    fn every_piece_fits_and_nothing_is_lost() {
        let text = "Ça va? Très bien… Et toi! ".repeat(200);
        for max in [1, 7, 50, 4096] {
            let pieces = split_for_speech(&text, max);
            assert!(pieces.iter().all(|p| !p.is_empty() && p.chars().count() <= max), "{max}");
            let joined: String = pieces.concat().split_whitespace().collect();
            let original: String = text.split_whitespace().collect();
            assert_eq!(joined, original, "{max}");
        }
    }
}
