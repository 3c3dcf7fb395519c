//! Word error rate.

/// Word error rate of `hypothesis` against `reference`: (substitutions + deletions +
/// insertions) / reference words, after [`normalise`]. An empty reference gives 0.0 for an
/// empty hypothesis and 1.0 otherwise.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f32 {
    match word_errors(reference, hypothesis) {
        (0, 0) => 0.0,
        (_, 0) => 1.0,
        (errors, words) => errors as f32 / words as f32,
    }
}

/// The counts behind [`word_error_rate`]: (substitutions + deletions + insertions,
/// reference words), after [`normalise`]; with no reference words every hypothesis word
/// is an insertion. For pooling errors over many pairs.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    (edit_distance(&r, &h), r.len())
}

/// Lower-cases and splits into words; punctuation (hyphens included) separates words,
/// apostrophes inside a word are kept (`don't`), and whole numbers below 100 are spelled out
/// (`10` → `ten`, `42` → `forty two`) since Whisper writes digits where references spell.
pub fn normalise(text: &str) -> Vec<String> {
    let cleaned: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '’' {
                if c == '’' {
                    '\''
                } else {
                    c
                }
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .flat_map(|w| match w.parse::<u32>() {
            Ok(n) if n < 100 => spell(n),
            _ => vec![w.to_string()],
        })
        .collect()
}

/// English words for 0..=99.
fn spell(n: u32) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let n = n as usize;
    match n {
        0..=19 => vec![ONES[n].to_string()],
        _ if n.is_multiple_of(10) => vec![TENS[n / 10].to_string()],
        _ => vec![TENS[n / 10].to_string(), ONES[n % 10].to_string()],
    }
}

/// Levenshtein distance over words, O(len(a) · len(b)) time, O(len(b)) memory.
fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, wa) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(wa != wb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_after_normalisation() {
        assert_eq!(word_error_rate("Hello, World!", "hello world"), 0.0);
        assert_eq!(word_error_rate("don't stop", "Don’t stop."), 0.0);
    }

    #[test]
    fn counts_each_kind_of_error() {
        // one substitution in four words
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        // one deletion
        assert_eq!(word_error_rate("a b c d", "a b d"), 0.25);
        // two insertions
        assert_eq!(word_error_rate("a b", "a q b r"), 1.0);
    }

    #[test]
    fn small_numbers_are_spelled() {
        assert_eq!(word_error_rate("ten of clubs", "10 of clubs."), 0.0);
        assert_eq!(normalise("42 and 100"), ["forty", "two", "and", "100"]);
    }

    #[test]
    fn empty_cases() {
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("  ", "x"), 1.0);
        assert_eq!(word_error_rate("a b", ""), 1.0);
    }
}
