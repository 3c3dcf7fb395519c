//! Whisper's BPE tokens → words, without special tokens or non-speech annotations.
//!
//! Whisper's byte-level BPE marks a word start with a leading space (`" hello"`, `","`,
//! `"ing"`), so a token that starts with a space (or the first token given) begins a new word
//! and any other token continues the current one. Punctuation stays attached to the word it
//! follows. Callers pass one Whisper segment at a time.
//!
//! On noise, music or silence Whisper writes annotations instead of words: `[BLANK_AUDIO]`,
//! `(upbeat music)`, `[MUSIC PLAYING]`, `*music*`, `♪`. They are removed here, so they never
//! reach a transcript, a word count or a speaking rate.

use super::Word;

/// Annotations longer than this many words are not annotations: Whisper's are one to three
/// words. Up to this length an unclosed `(`/`[`/`*` run is dropped; beyond it the words are
/// kept (without the stray opening mark) so real speech is never lost to a stray bracket.
const MAX_ANNOTATION_WORDS: usize = 6;

/// One decoded text token, already separated from Whisper's special tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPiece {
    /// The token's bytes (BPE tokens may split a UTF-8 character; bytes are joined first).
    pub bytes: Vec<u8>,
    /// Start, ms from the start of the audio.
    pub start_ms: u32,
    /// End, ms from the start of the audio.
    pub end_ms: u32,
    /// Token probability, 0..=1.
    pub p: f32,
}

/// Merges tokens into words, removes non-speech annotations and keeps each word's end at or
/// before the next word's start.
pub fn tokens_to_words(tokens: &[TokenPiece]) -> Vec<Word> {
    let mut words = drop_annotations(merge_tokens(tokens));
    clamp_ends(&mut words);
    words
}

/// Words do not overlap: each ends no later than the next one starts (and not before it
/// starts itself). Token end times are estimates; starts are the better-aligned half.
pub fn clamp_ends(words: &mut [Word]) {
    for i in 0..words.len() {
        let next_start = words.get(i + 1).map(|n| n.start_ms);
        let w = &mut words[i];
        if let Some(n) = next_start {
            w.end_ms = w.end_ms.min(n);
        }
        w.end_ms = w.end_ms.max(w.start_ms);
    }
}

/// Merges tokens into words (see the module docs). Tokens that look like whisper.cpp's
/// special-token names (`[_BEG_]`, `[_TT_150]`) are skipped defensively.
pub fn merge_tokens(tokens: &[TokenPiece]) -> Vec<Word> {
    struct Acc {
        bytes: Vec<u8>,
        start_ms: u32,
        end_ms: u32,
        p_sum: f32,
        n: u32,
    }
    fn finish(acc: Option<Acc>, out: &mut Vec<Word>) {
        if let Some(a) = acc {
            let text = String::from_utf8_lossy(&a.bytes).trim().to_string();
            if !text.is_empty() {
                out.push(Word {
                    text,
                    start_ms: a.start_ms,
                    end_ms: a.end_ms.max(a.start_ms),
                    confidence: a.p_sum / a.n as f32,
                });
            }
        }
    }

    let mut out = Vec::new();
    let mut acc: Option<Acc> = None;
    for t in tokens {
        if is_special_name(&t.bytes) {
            continue;
        }
        let begins = t.bytes.first() == Some(&b' ');
        match acc.as_mut() {
            Some(a) if !begins => {
                a.bytes.extend_from_slice(&t.bytes);
                a.end_ms = t.end_ms;
                a.p_sum += t.p;
                a.n += 1;
            }
            _ => {
                finish(acc.take(), &mut out);
                acc = Some(Acc {
                    bytes: t.bytes.clone(),
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                    p_sum: t.p,
                    n: 1,
                });
            }
        }
    }
    finish(acc, &mut out);
    out
}

fn is_special_name(bytes: &[u8]) -> bool {
    bytes.starts_with(b"[_") && bytes.ends_with(b"]")
}

/// The mark that closes an annotation opened by `open`.
fn closer(open: char) -> Option<char> {
    match open {
        '[' => Some(']'),
        '(' => Some(')'),
        '*' => Some('*'),
        _ => None,
    }
}

/// Removes annotation runs (`[…]`, `(…)`, `*…*`, possibly spanning several words) and words
/// without a letter or digit (`♪`, `-`, `...`).
pub fn drop_annotations(words: Vec<Word>) -> Vec<Word> {
    let mut out = Vec::with_capacity(words.len());
    // An open annotation: its closing mark and the words held back meanwhile.
    let mut open: Option<(char, Vec<Word>)> = None;
    for w in words {
        if let Some((close, held)) = open.as_mut() {
            if w.text.contains(*close) {
                open = None; // the whole run is an annotation
            } else {
                held.push(w);
                if held.len() > MAX_ANNOTATION_WORDS {
                    if let Some((_, held)) = open.take() {
                        release(held, &mut out);
                    }
                }
            }
            continue;
        }
        let mut chars = w.text.chars();
        if let Some(close) = chars.next().and_then(closer) {
            if chars.as_str().contains(close) {
                continue; // a one-word annotation: `[BLANK_AUDIO]`, `(laughs)`
            }
            open = Some((close, vec![w]));
            continue;
        }
        if has_speech(&w.text) {
            out.push(w);
        }
    }
    if let Some((_, held)) = open {
        if held.len() > MAX_ANNOTATION_WORDS {
            release(held, &mut out);
        }
    }
    out
}

/// Keeps the words of an unclosed, over-long "annotation", minus the stray opening mark.
fn release(held: Vec<Word>, out: &mut Vec<Word>) {
    for (i, mut w) in held.into_iter().enumerate() {
        if i == 0 {
            w.text = w.text.chars().skip(1).collect();
        }
        if has_speech(&w.text) {
            out.push(w);
        }
    }
}

fn has_speech(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str, t: u32) -> TokenPiece {
        TokenPiece {
            bytes: s.as_bytes().to_vec(),
            start_ms: t,
            end_ms: t + 100,
            p: 0.5,
        }
    }

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn leading_space_starts_a_word() {
        let mut toks = vec![
            tok("Hel", 0),
            tok("lo", 100),
            tok(",", 200),
            tok(" world", 300),
            tok(".", 400),
        ];
        toks[0].p = 1.0;
        let words = merge_tokens(&toks);
        assert_eq!(texts(&words), ["Hello,", "world."]);
        assert_eq!((words[0].start_ms, words[0].end_ms), (0, 300));
        assert_eq!((words[1].start_ms, words[1].end_ms), (300, 500));
        assert!((words[0].confidence - (1.0 + 0.5 + 0.5) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn first_token_starts_a_word_and_specials_are_skipped() {
        let toks = vec![
            tok("[_BEG_]", 0),
            tok("once", 0),
            tok("[_TT_42]", 800),
            tok(" more", 900),
        ];
        assert_eq!(texts(&merge_tokens(&toks)), ["once", "more"]);
    }

    #[test]
    fn ends_are_clamped_to_the_next_start() {
        let toks = vec![tok(" a", 0), tok(" b", 50), tok(" c", 300)];
        let words = tokens_to_words(&toks);
        let times: Vec<_> = words.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(times, [(0, 50), (50, 150), (300, 400)]);
    }

    #[test]
    fn split_utf8_character_is_joined() {
        let e = "é".as_bytes();
        let mut a = tok(" caf", 0);
        a.bytes.push(e[0]);
        let b = TokenPiece {
            bytes: vec![e[1]],
            ..tok("", 100)
        };
        assert_eq!(texts(&merge_tokens(&[a, b])), ["café"]);
    }

    #[test]
    fn annotations_are_removed() {
        let toks = [
            " [", "BL", "ANK", "_", "AUDIO", "]", " Yes", " (", "up", "beat", " music", ")",
            " please", " [", "MUS", "IC", " PLAY", "ING", "]", " *", "music", "*", " ♪", " okay.",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| tok(s, i as u32 * 10))
        .collect::<Vec<_>>();
        assert_eq!(texts(&tokens_to_words(&toks)), ["Yes", "please", "okay."]);
    }

    #[test]
    fn stray_bracket_does_not_swallow_speech() {
        let toks = " (and then we went to the shop and bought bread"
            .split_inclusive(' ')
            .enumerate()
            .map(|(i, s)| tok(&format!(" {}", s.trim()), i as u32 * 100))
            .collect::<Vec<_>>();
        let words = tokens_to_words(&toks);
        assert_eq!(words.first().map(|w| w.text.as_str()), Some("and"));
        assert_eq!(words.len(), 10);
    }

    #[test]
    fn short_unclosed_annotation_at_end_is_dropped() {
        let toks = vec![tok(" fine", 0), tok(" (music", 100)];
        assert_eq!(texts(&tokens_to_words(&toks)), ["fine"]);
    }
}
