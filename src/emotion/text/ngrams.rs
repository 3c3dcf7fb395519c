//! Hashed word and character n-grams of a transcript: the features that let the words model
//! read what no lexicon lists ("third time i've called", misspellings, ASR spellings).
//!
//! The normalisation is the one [`super::tokenise`] applies (lowercase, apostrophes unified,
//! Whisper's bracketed annotations dropped, split on everything but letters and digits inside
//! a word), then apostrophes are removed from each word, so "don't", "don’t" and "dont" are one
//! word and punctuation never matters. Training and scoring both go through [`ngram_features`],
//! so they cannot drift apart.
//!
//! Features: word unigrams and bigrams, and character 3- to 5-grams within each word padded with
//! a space on both sides (" call " gives " ca", "cal", "all", "ll ", " cal", ...). Each n-gram
//! is hashed with FNV-1a 64 over its UTF-8 bytes, prefixed with `w\x1f` (word n-grams, bigram
//! words joined by one space) or `c\x1f` (character n-grams), and the bucket is the hash modulo
//! 2^bits. A bucket's value is ln(1 + count); the vector is then scaled to unit L2 norm.

/// FNV-1a 64 offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0100_0000_01b3;
/// Prefix of word n-grams.
const WORD_PREFIX: &[u8] = b"w\x1f";
/// Prefix of character n-grams.
const CHAR_PREFIX: &[u8] = b"c\x1f";
/// Shortest and longest character n-gram (in chars, padding included).
pub const CHAR_NGRAMS: (usize, usize) = (3, 5);

/// FNV-1a 64 of the concatenated byte strings.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// The words of a transcript as an ASR engine writes them: [`super::tokenise`]'s words
/// (lowercase, apostrophes only inside words, annotations dropped, at most
/// [`super::MAX_WORDS`]).
pub fn asr_words(transcript: &str) -> Vec<String> {
    super::tokenise(transcript)
        .words
        .into_iter()
        .map(|t| t.text)
        .collect()
}

/// The words n-grams are taken from: [`asr_words`] without apostrophes.
pub fn ngram_words(transcript: &str) -> Vec<String> {
    asr_words(transcript)
        .into_iter()
        .map(|w| w.replace('\'', ""))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The sparse n-gram vector of `words` in a table of 2^`bits` buckets: (bucket, value) pairs
/// sorted by bucket, unit L2 norm (empty for no words). Written into `out` (cleared first).
pub fn ngram_features(words: &[String], bits: u32, out: &mut Vec<(u32, f32)>) {
    out.clear();
    let mask = (1u64 << bits) - 1;
    let mut buckets: Vec<u32> = Vec::with_capacity(words.len() * 12);
    let mut push = |h: u64| buckets.push((h & mask) as u32);
    let mut padded: Vec<u8> = Vec::new();
    let mut bounds: Vec<usize> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        push(fnv1a64(&[WORD_PREFIX, w.as_bytes()]));
        if let Some(next) = words.get(i + 1) {
            push(fnv1a64(&[WORD_PREFIX, w.as_bytes(), b" ", next.as_bytes()]));
        }
        // Char n-grams over chars, not bytes: byte offsets of each char boundary.
        padded.clear();
        padded.push(b' ');
        padded.extend_from_slice(w.as_bytes());
        padded.push(b' ');
        let s = std::str::from_utf8(&padded).unwrap_or(" ");
        bounds.clear();
        bounds.extend(s.char_indices().map(|(b, _)| b));
        bounds.push(padded.len());
        let chars = bounds.len() - 1;
        for n in CHAR_NGRAMS.0..=CHAR_NGRAMS.1 {
            for start in 0..(chars + 1).saturating_sub(n) {
                push(fnv1a64(&[
                    CHAR_PREFIX,
                    &padded[bounds[start]..bounds[start + n]],
                ]));
            }
        }
    }
    buckets.sort_unstable();
    let mut norm = 0.0f32;
    let mut i = 0;
    while i < buckets.len() {
        let b = buckets[i];
        let mut j = i;
        while j < buckets.len() && buckets[j] == b {
            j += 1;
        }
        let v = ((j - i) as f32).ln_1p();
        norm += v * v;
        out.push((b, v));
        i = j;
    }
    if norm > 0.0 {
        let inv = norm.sqrt().recip();
        out.iter_mut().for_each(|(_, v)| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
        assert_eq!(fnv1a64(&[b"foobar"]), 0x85944171f73967e8);
    }

    #[test]
    fn punctuation_case_and_apostrophes_do_not_matter() {
        let a = ngram_words("I DON'T want this, [BLANK_AUDIO] okay?!");
        let b = ngram_words("i dont want this okay");
        assert_eq!(a, b);
    }

    #[test]
    fn features_are_sorted_unit_norm_and_count_ngrams() {
        let words = ngram_words("cancel cancel");
        let mut f = Vec::new();
        ngram_features(&words, 16, &mut f);
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        let norm: f32 = f.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        // " cancel " is 8 chars: 6 + 5 + 4 char n-grams, plus the word: 16 distinct n-grams
        // (the bigram "cancel cancel" too), barring a collision.
        assert!(f.len() >= 15 && f.len() <= 17, "{}", f.len());
        ngram_features(&[], 16, &mut f);
        assert!(f.is_empty());
        // Non-ASCII words are cut at char boundaries.
        ngram_features(&ngram_words("café naïve"), 10, &mut f);
        assert!(!f.is_empty());
    }
}
