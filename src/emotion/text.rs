//! The words side of the emotion model: a transcript becomes a dozen explainable features
//! (VADER valence, contact-centre cue counts, negations, punctuation, length) and hashed word
//! and character n-grams ([`ngrams`]); a trained linear model turns them into class
//! probabilities (softmax) and a frustration score (logistic).
//!
//! Sans-I/O apart from the two loaders ([`TextLexicon::load`], [`TextModel::load`]): scoring
//! takes a `&str` and returns a [`TextScore`]. Transcripts are customer data, so nothing in
//! this module logs text.
//!
//! The valence follows VADER 3.3.2 (Hutto & Gilbert, 2014) with its own lexicon, negation and
//! booster lists (the files in `models/text/`), with these differences, all because the input
//! is Whisper output rather than social media: no ALL-CAPS emphasis (Whisper does not shout),
//! no emoji or emoticons, no idiom table; negation and boosters do not reach across a clause
//! break (`,` `.` `;` `:` `!` `?`), so "No, I'm worried" is not "not worried"; multi-word
//! boosters ("kind of") damp towards zero for negative words too (VADER adds -0.293 whatever
//! the sign); a cue phrase's words are scored once, inside the cue.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::linear::Softmax;

pub mod ngrams;
use super::{CLASSES, N_CLASSES};

/// VADER's scale for a negated word (N_SCALAR).
const NEGATION_SCALAR: f32 = -0.74;
/// VADER's normalisation constant: compound = x / sqrt(x² + α).
const COMPOUND_ALPHA: f32 = 15.0;
/// VADER's weight of the words before the first "but" and after it.
const BEFORE_BUT: f32 = 0.5;
const AFTER_BUT: f32 = 1.5;
/// VADER's emphasis per "!" (at most 4 count) and for 2-3 "?" (0.96 for more).
const EXCLAMATION_EMPHASIS: f32 = 0.292;
const QUESTION_EMPHASIS: f32 = 0.18;
/// Words before a sentiment word or cue that a negation or booster may stand in (VADER's 3).
pub(crate) const SCOPE: usize = 3;
/// A transcript longer than this is scored on its first words only: bounds the work and the
/// hit list for any input (a 30 s utterance is about 100 words).
pub const MAX_WORDS: usize = 400;

/// Names of the text features, in the order of every feature vector and model row.
pub const TEXT_FEATURES: [&str; 12] = [
    // VADER's share of positive and of negative sentiment among the words, 0..1.
    "positive",
    "negative",
    // VADER's compound valence, -1..1.
    "compound",
    // ln(1 + number of cue phrases) per class, in CLASSES order.
    "cue_neutral",
    "cue_happy",
    "cue_angry",
    "cue_sad",
    "cue_fearful",
    // ln(1 + number of negation words).
    "negations",
    // 1 when the transcript has a "?", else 0.
    "question",
    // 1 when the transcript has a "!", else 0.
    "exclamation",
    // ln(1 + number of words).
    "log_words",
];
/// Number of text features.
pub const N_TEXT_FEATURES: usize = TEXT_FEATURES.len();
/// Index of the first cue feature (one per class follows).
const CUE_FEATURE: usize = 3;

/// Errors of loading the lexicon files and the text model. All are fatal for the words
/// side: without them the service must run on the voice alone or not start.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a lexicon or data file is malformed.
    #[error("{file} line {line}: {reason}")]
    Parse {
        /// File name (or a label for in-memory text).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The model file is not valid JSON for a [`TextModel`].
    #[error("{path}: not a text model: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The model does not fit this build (features, classes or weight shapes).
    #[error("text model does not match this build: {reason}")]
    Mismatch {
        /// What differs.
        reason: String,
    },
    /// A data set has no usable rows.
    #[error("{what}: no usable rows")]
    Empty {
        /// The data set.
        what: String,
    },
}

/// One cue phrase: its words (tokenised like transcripts) and its class.
#[derive(Clone, Debug)]
struct Cue {
    words: Vec<String>,
    class: usize,
}

/// The word lists the text features are computed from: VADER's valence lexicon, negations
/// and boosters, and the contact-centre cues. Built once and shared by every call.
#[derive(Clone, Debug)]
pub struct TextLexicon {
    valence: HashMap<String, f32>,
    negations: HashSet<String>,
    boosters: HashMap<String, f32>,
    /// Multi-word boosters ("kind of"), as words.
    booster_phrases: Vec<(Vec<String>, f32)>,
    cues: Vec<Cue>,
    /// First word of a cue → indices into `cues`, longest cue first.
    cue_starts: HashMap<String, Vec<usize>>,
}

/// File names inside the lexicon directory.
pub const LEXICON_FILE: &str = "vader_lexicon.txt";
/// Negation words, one a line.
pub const NEGATIONS_FILE: &str = "negations.txt";
/// Boosters and dampeners: word or phrase, tab, increment.
pub const BOOSTERS_FILE: &str = "boosters.tsv";
/// Cue phrases: phrase, tab, class name.
pub const CUES_FILE: &str = "cues.tsv";

impl TextLexicon {
    /// Loads the four files from `dir` (normally `models/text`).
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| TextError::Io { path, source })
        };
        Self::from_strs(
            &read(LEXICON_FILE)?,
            &read(NEGATIONS_FILE)?,
            &read(BOOSTERS_FILE)?,
            &read(CUES_FILE)?,
        )
    }

    /// Builds the lexicon from the files' contents. Lines starting with `#` and blank lines
    /// are skipped in the three data files; VADER's lexicon is taken as shipped (word, tab,
    /// mean valence, then columns that are ignored).
    pub fn from_strs(
        vader: &str,
        negations: &str,
        boosters: &str,
        cues: &str,
    ) -> Result<Self, TextError> {
        let mut valence = HashMap::new();
        for (n, line) in vader.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(word), Some(v)) = (cols.next(), cols.next()) else {
                return Err(parse_err(LEXICON_FILE, n, "expected word<TAB>valence"));
            };
            let v: f32 = v
                .trim()
                .parse()
                .map_err(|_| parse_err(LEXICON_FILE, n, "valence is not a number"))?;
            // Entries with spaces ("fed up") never match a single token in VADER either;
            // keeping them costs nothing and keeps the file verbatim.
            valence.insert(word.to_lowercase(), v);
        }

        let negations = data_lines(negations)
            .map(|(_, l)| normalise_apostrophes(&l.to_lowercase()))
            .collect();

        let mut single = HashMap::new();
        let mut booster_phrases = Vec::new();
        for (n, line) in data_lines(boosters) {
            let (word, inc) = line
                .split_once('\t')
                .ok_or_else(|| parse_err(BOOSTERS_FILE, n, "expected word<TAB>increment"))?;
            let inc: f32 = inc
                .trim()
                .parse()
                .map_err(|_| parse_err(BOOSTERS_FILE, n, "increment is not a number"))?;
            let mut words = words_of(word);
            match words.len() {
                0 => return Err(parse_err(BOOSTERS_FILE, n, "no word")),
                1 => {
                    single.insert(words.swap_remove(0), inc);
                }
                _ => booster_phrases.push((words, inc)),
            }
        }

        let mut cue_list = Vec::new();
        for (n, line) in data_lines(cues) {
            let (phrase, class) = line
                .split_once('\t')
                .ok_or_else(|| parse_err(CUES_FILE, n, "expected phrase<TAB>class"))?;
            let class = CLASSES
                .iter()
                .position(|c| *c == class.trim())
                .ok_or_else(|| parse_err(CUES_FILE, n, "class is not one of the five"))?;
            let words = words_of(phrase);
            if words.is_empty() {
                return Err(parse_err(CUES_FILE, n, "no word"));
            }
            cue_list.push(Cue { words, class });
        }
        let cue_starts = phrase_starts(&cue_list.iter().map(|c| &c.words[..]).collect::<Vec<_>>());
        Ok(Self {
            valence,
            negations,
            boosters: single,
            booster_phrases,
            cues: cue_list,
            cue_starts,
        })
    }

    /// VADER's valence of one (lowercase) word, -4..4, if it is in the lexicon.
    pub fn valence(&self, word: &str) -> Option<f32> {
        self.valence.get(word).copied()
    }

    /// Whether a word negates what follows: in the list, or any "n't" word (VADER's rule).
    pub fn is_negation(&self, word: &str) -> bool {
        self.negations.contains(word) || word.contains("n't")
    }

    /// Number of cue phrases.
    pub fn cue_count(&self) -> usize {
        self.cues.len()
    }
}

fn parse_err(file: &str, line0: usize, reason: &str) -> TextError {
    TextError::Parse {
        file: file.into(),
        line: line0 + 1,
        reason: reason.into(),
    }
}

/// Non-blank, non-comment lines with their 0-based numbers.
pub(crate) fn data_lines(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.lines()
        .enumerate()
        .map(|(n, l)| (n, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
}

/// Curly and other apostrophes as `'`: Whisper and typed text disagree on which to write.
fn normalise_apostrophes(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' | '\u{00B4}' => '\'',
            c => c,
        })
        .collect()
}

/// The words of a phrase, tokenised like a transcript.
pub(crate) fn words_of(s: &str) -> Vec<String> {
    tokenise(s).words.into_iter().map(|t| t.text).collect()
}

/// First word of each phrase (none empty) → the indices of the phrases it starts, longest
/// first: where matching a phrase at a word begins.
pub(crate) fn phrase_starts(phrases: &[&[String]]) -> HashMap<String, Vec<usize>> {
    let mut starts: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in phrases.iter().enumerate() {
        starts.entry(p[0].clone()).or_default().push(i);
    }
    for v in starts.values_mut() {
        v.sort_by_key(|&i| std::cmp::Reverse(phrases[i].len()));
    }
    starts
}

/// One word of a transcript and the clause it is in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) text: String,
    pub(crate) clause: u32,
}

/// A tokenised transcript.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub(crate) words: Vec<Token>,
    exclamations: usize,
    questions: usize,
}

/// Lowercases, normalises apostrophes, drops Whisper's bracketed annotations
/// (`[BLANK_AUDIO]`, `(upbeat music)`), and splits on everything but letters, digits and
/// apostrophes inside a word. Clause punctuation starts a new clause.
pub(crate) fn tokenise(text: &str) -> Tokens {
    let norm = normalise_apostrophes(&text.to_lowercase());
    let chars: Vec<char> = norm.chars().collect();
    let mut out = Tokens::default();
    let mut word = String::new();
    let mut clause = 0u32;
    let mut depth = 0usize;
    let flush = |word: &mut String, out: &mut Tokens, clause: u32| {
        if !word.is_empty() && out.words.len() < MAX_WORDS {
            out.words.push(Token {
                text: std::mem::take(word),
                clause,
            });
        }
        word.clear();
    };
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '[' | '(' => {
                flush(&mut word, &mut out, clause);
                depth += 1;
                continue;
            }
            ']' | ')' => {
                flush(&mut word, &mut out, clause);
                depth = depth.saturating_sub(1);
                continue;
            }
            _ if depth > 0 => continue,
            _ => {}
        }
        // An apostrophe belongs to a word only between letters or digits ("can't", "90's").
        let inner_apostrophe =
            c == '\'' && !word.is_empty() && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_apostrophe {
            word.push(c);
        } else {
            flush(&mut word, &mut out, clause);
            match c {
                '!' => out.exclamations += 1,
                '?' => out.questions += 1,
                _ => {}
            }
            if matches!(c, ',' | '.' | ';' | ':' | '!' | '?') {
                clause += 1;
            }
        }
    }
    flush(&mut word, &mut out, clause);
    out
}

/// One piece of evidence in a transcript: a sentiment word or a cue phrase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextHit {
    /// The words as heard (lowercased), with the negation when one flipped it ("not happy").
    pub phrase: String,
    /// The class a cue phrase points to; `None` for a sentiment word alone.
    pub class: Option<usize>,
    /// VADER valence of the words after negation and boosters (about -4..4; 0 for a cue
    /// with no sentiment word).
    pub valence: f32,
    /// Its push on the top class: its share of the top class's logit minus the mean logit,
    /// after the temperature. Positive means it argued for the top class.
    pub weight: f32,
}

/// The words model's reading of one transcript.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextScore {
    /// Class probabilities in [`CLASSES`] order.
    pub probs: [f32; N_CLASSES],
    /// VADER compound valence, -1..1.
    pub valence: f32,
    /// Frustration (anger, annoyance, disapproval in the words), 0..1: the model's second,
    /// logistic head. Class-balanced, so 0.5 is "as likely as not", not a base rate.
    pub frustration: f32,
    /// How far the words moved the model: the total variation distance (0..1) between
    /// `probs` and the model's prior, the probabilities of an empty transcript (intercept
    /// only). Every n-gram is evidence, so this is 0 only when no word was heard (empty text,
    /// annotations alone); fusion should then ignore the words.
    pub evidence: f32,
    /// The model's prior ([`TextModel::no_evidence_probs`]): the reference fusion compares
    /// `probs` with.
    pub baseline_probs: [f32; N_CLASSES],
    /// The evidence, strongest push on the top class first.
    pub hits: Vec<TextHit>,
}

/// A hit before the model has weighed it: which features it feeds and how much.
#[derive(Clone, Debug)]
struct RawHit {
    phrase: String,
    class: Option<usize>,
    /// Sum of the (but-weighted) sentiments of its words.
    sentiment: f32,
    /// Its words' sentiments, each feeding `positive` or `negative`.
    parts: Vec<f32>,
}

/// Everything [`TextLexicon::analyse`] finds in a transcript.
#[derive(Clone, Debug)]
pub struct TextFeatures {
    /// The feature vector, [`TEXT_FEATURES`] order.
    pub values: [f32; N_TEXT_FEATURES],
    hits: Vec<RawHit>,
    /// Totals for attributing the features to hits.
    pos_sum: f32,
    neg_sum: f32,
    sentiment_sum: f32,
    cue_counts: [usize; N_CLASSES],
}

impl TextFeatures {
    /// Whether any sentiment word or cue was found.
    pub fn has_hits(&self) -> bool {
        !self.hits.is_empty()
    }
}

impl TextLexicon {
    /// The features of one transcript (pure; no model involved).
    pub fn analyse(&self, transcript: &str) -> TextFeatures {
        let toks = tokenise(transcript);
        let w = &toks.words;
        let n = w.len();
        let same_clause = |a: usize, b: usize| w[a].clause == w[b].clause;

        // Cues first, longest match first, so their words are scored inside the cue.
        let mut cue_of: Vec<Option<usize>> = vec![None; n];
        let mut cue_spans: Vec<(usize, usize, usize)> = Vec::new(); // start, end, cue index
        let mut negations = 0usize;
        let mut i = 0;
        while i < n {
            let found = self.cue_starts.get(&w[i].text).and_then(|cands| {
                cands.iter().copied().find(|&c| {
                    let cw = &self.cues[c].words;
                    i + cw.len() <= n
                        && cw
                            .iter()
                            .enumerate()
                            .all(|(k, word)| w[i + k].text == *word && same_clause(i, i + k))
                })
            });
            match found {
                Some(c) => {
                    let len = self.cues[c].words.len();
                    let negated = (i.saturating_sub(SCOPE)..i)
                        .any(|j| same_clause(j, i) && self.is_negation(&w[j].text));
                    if !negated {
                        cue_spans.push((i, i + len, c));
                        for slot in &mut cue_of[i..i + len] {
                            *slot = Some(cue_spans.len() - 1);
                        }
                    }
                    i += len;
                }
                None => i += 1,
            }
        }

        // VADER sentiment per word.
        let mut sentiments = vec![0.0f32; n];
        let mut negated_by: Vec<Option<usize>> = vec![None; n];
        let mut in_booster_phrase = vec![false; n];
        for (words, _) in &self.booster_phrases {
            for s in 0..n.saturating_sub(words.len() - 1) {
                if (0..words.len()).all(|k| w[s + k].text == words[k]) {
                    in_booster_phrase[s..s + words.len()].fill(true);
                }
            }
        }
        for i in 0..n {
            let word = w[i].text.as_str();
            if self.is_negation(word) {
                negations += 1;
            }
            if self.boosters.contains_key(word) || in_booster_phrase[i] {
                continue;
            }
            let Some(base) = self.valence(word) else {
                continue;
            };
            let prev = |k: usize| (i > k && same_clause(i - k - 1, i)).then(|| &w[i - k - 1].text);
            let mut v = base;
            // "no" before a sentiment word negates it rather than counting itself.
            if word == "no"
                && i + 1 < n
                && same_clause(i, i + 1)
                && self.valence(&w[i + 1].text).is_some()
            {
                v = 0.0;
            }
            let no_before = prev(0).is_some_and(|p| p == "no")
                || prev(1).is_some_and(|p| p == "no")
                || (prev(2).is_some_and(|p| p == "no")
                    && prev(0).is_some_and(|p| p == "or" || p == "nor"));
            if no_before {
                v = base * NEGATION_SCALAR;
                negated_by[i] = (i.saturating_sub(SCOPE)..i)
                    .rev()
                    .find(|&j| w[j].text == "no");
            }
            for k in 0..SCOPE {
                let Some(p) = prev(k) else { break };
                // VADER lets only words outside the lexicon modify a sentiment word.
                if self.valence(p).is_some() {
                    continue;
                }
                let j = i - k - 1;
                let mut s = self.boosters.get(p.as_str()).copied().unwrap_or(0.0);
                if v < 0.0 {
                    s = -s;
                }
                v += s * [1.0, 0.95, 0.9][k];
                let after = &w[j + 1].text;
                if k > 0 && p == "never" && (after == "so" || after == "this") {
                    // "never so good", "never this bad": VADER reads emphasis, not negation.
                    v *= 1.25;
                } else if k > 0 && p == "without" && after == "doubt" {
                    // "without doubt good" is not a negation.
                } else if self.is_negation(p) {
                    v *= NEGATION_SCALAR;
                    negated_by[i] = Some(j);
                }
            }
            // Multi-word dampeners/boosters just before the word ("kind of good").
            for (words, inc) in &self.booster_phrases {
                let len = words.len();
                for gap in 0..2 {
                    if i >= len + gap
                        && same_clause(i - len - gap, i)
                        && (0..len).all(|k| w[i - len - gap + k].text == words[k])
                    {
                        v += if v < 0.0 { -inc } else { *inc };
                    }
                }
            }
            // "least" negates ("the least helpful") except in "at least" / "very least".
            if i > 0 && w[i - 1].text == "least" && same_clause(i - 1, i) {
                let before = (i > 1 && same_clause(i - 2, i)).then(|| w[i - 2].text.as_str());
                if !matches!(before, Some("at" | "very")) {
                    v *= NEGATION_SCALAR;
                    negated_by[i] = Some(i - 1);
                }
            }
            sentiments[i] = v;
        }
        // The contrastive "but": what follows it counts more than what precedes it.
        if let Some(b) = w.iter().position(|t| t.text == "but") {
            for (i, s) in sentiments.iter_mut().enumerate() {
                if i < b {
                    *s *= BEFORE_BUT;
                } else if i > b {
                    *s *= AFTER_BUT;
                }
            }
        }

        // VADER's sums.
        let mut sum: f32 = sentiments.iter().sum();
        let amp = EXCLAMATION_EMPHASIS * toks.exclamations.min(4) as f32
            + match toks.questions {
                0 | 1 => 0.0,
                q @ 2..=3 => QUESTION_EMPHASIS * q as f32,
                _ => 0.96,
            };
        if sum > 0.0 {
            sum += amp;
        } else if sum < 0.0 {
            sum -= amp;
        }
        let compound = (sum / (sum * sum + COMPOUND_ALPHA).sqrt()).clamp(-1.0, 1.0);
        let mut pos_sum: f32 = sentiments
            .iter()
            .filter(|s| **s > 0.0)
            .map(|s| s + 1.0)
            .sum();
        let mut neg_sum: f32 = sentiments
            .iter()
            .filter(|s| **s < 0.0)
            .map(|s| s - 1.0)
            .sum();
        let neutral = sentiments.iter().filter(|s| **s == 0.0).count() as f32;
        let (pos_words, neg_words) = (pos_sum, neg_sum);
        if pos_sum > neg_sum.abs() {
            pos_sum += amp;
        } else if pos_sum < neg_sum.abs() {
            neg_sum -= amp;
        }
        let total = pos_sum + neg_sum.abs() + neutral;
        let (pos, neg) = if total > 0.0 {
            (pos_sum / total, neg_sum.abs() / total)
        } else {
            (0.0, 0.0)
        };

        // Hits: each cue with the sentiment words inside it, then sentiment words alone.
        let mut hits: Vec<RawHit> = cue_spans
            .iter()
            .map(|&(s, e, c)| RawHit {
                phrase: join(&w[s..e]),
                class: Some(self.cues[c].class),
                sentiment: 0.0,
                parts: Vec::new(),
            })
            .collect();
        let mut cue_counts = [0usize; N_CLASSES];
        for &(_, _, c) in &cue_spans {
            cue_counts[self.cues[c].class] += 1;
        }
        for i in 0..n {
            let s = sentiments[i];
            if s == 0.0 {
                continue;
            }
            if let Some(h) = cue_of[i] {
                hits[h].sentiment += s;
                hits[h].parts.push(s);
            } else {
                let from = negated_by[i].unwrap_or(i);
                hits.push(RawHit {
                    phrase: join(&w[from..=i]),
                    class: None,
                    sentiment: s,
                    parts: vec![s],
                });
            }
        }

        let mut values = [0.0f32; N_TEXT_FEATURES];
        values[0] = pos;
        values[1] = neg;
        values[2] = compound;
        for (c, &k) in cue_counts.iter().enumerate() {
            values[CUE_FEATURE + c] = (k as f32).ln_1p();
        }
        values[8] = (negations as f32).ln_1p();
        values[9] = f32::from(u8::from(toks.questions > 0));
        values[10] = f32::from(u8::from(toks.exclamations > 0));
        values[11] = (n as f32).ln_1p();
        TextFeatures {
            values,
            hits,
            pos_sum: pos_words,
            neg_sum: neg_words.abs(),
            sentiment_sum: sentiments.iter().sum(),
            cue_counts,
        }
    }
}

fn join(t: &[Token]) -> String {
    t.iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Format of the model file this build reads and writes. Format 1 (no `format` field) was the
/// softmax over the 12 lexicon features alone; format 2 adds the hashed n-gram weights and the
/// frustration head.
pub const TEXT_MODEL_FORMAT: u32 = 2;

/// Weights rounded to this many significant digits in the file (keeps it small; the figures
/// in the file are measured with the rounded weights).
pub const WEIGHT_DIGITS: usize = 4;

/// Rounds a weight to [`WEIGHT_DIGITS`] significant digits, as the file stores it.
pub fn round_weight(v: f32) -> f32 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{:.*e}", WEIGHT_DIGITS - 1, v).parse().unwrap_or(v)
}

/// A long row of weights, stored in the file as one string of space-separated numbers (pretty
/// JSON would spend a line on each of tens of thousands of numbers).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedRow(pub Vec<f32>);

impl Serialize for PackedRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(self.0.len() * 8);
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            // Shortest form that reads back as the same f32.
            out.push_str(&format!("{v}"));
        }
        s.serialize_str(&out)
    }
}

impl<'de> Deserialize<'de> for PackedRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.split_ascii_whitespace()
            .map(|t| t.parse::<f32>())
            .collect::<Result<Vec<_>, _>>()
            .map(PackedRow)
            .map_err(|e| serde::de::Error::custom(format!("bad weight in packed row: {e}")))
    }
}

/// The hashed n-gram part of the model (see [`ngrams`] for the features).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NgramWeights {
    /// The hash and features, in words (documentation; the code is [`ngrams`]).
    pub hash: String,
    /// The table has 2^bits buckets.
    pub bits: u32,
    /// One row of 2^bits weights per class, [`CLASSES`] order.
    pub classes: Vec<PackedRow>,
    /// The frustration head's 2^bits weights.
    pub frustration: PackedRow,
}

/// Description stored in [`NgramWeights::hash`].
pub const NGRAM_HASH: &str = "FNV-1a 64 of the UTF-8 n-gram prefixed 'w\\x1f' (word 1-2-grams, \
    joined by a space) or 'c\\x1f' (char 3-5-grams within ' word '), modulo 2^bits; words are \
    tokenise()'s (lowercase, punctuation and apostrophes removed); values ln(1+count), unit L2 norm";

/// Smallest and largest table the loader accepts (2^8 .. 2^20 buckets).
const BITS_RANGE: std::ops::RangeInclusive<u32> = 8..=20;

/// The frustration head: logistic over the lexicon features and the n-grams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrustrationHead {
    /// One weight per [`TEXT_FEATURES`] entry.
    pub lexicon: Vec<f32>,
    /// Intercept.
    pub bias: f32,
}

/// Where the model came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextProvenance {
    /// Training corpus and its licence.
    pub corpus: String,
    /// The command that wrote the file.
    pub command: String,
    /// How corpus labels became the five classes, and which rows were left out.
    pub label_mapping: String,
    /// How the frustration head's labels were made.
    #[serde(default)]
    pub frustration_labels: String,
    /// Rows used for training, per class (each once, before the ASR-style copy).
    pub train_rows: Vec<usize>,
    /// Rows the temperature was fitted and the metrics measured on, per class.
    pub dev_rows: Vec<usize>,
    /// Lexicon files the features were computed with (names and origin).
    pub lexicon: String,
    /// Trainer settings.
    pub fit: String,
}

/// How good a text model is on one labelled set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextEval {
    /// Labelled rows scored.
    pub rows: usize,
    /// Unweighted average recall over the classes present.
    pub uar: f32,
    /// Recall per class (`None` where the set has none of it).
    pub recalls: Vec<Option<f32>>,
    /// Confusion counts, `[true][predicted]`.
    pub confusion: Vec<Vec<u32>>,
    /// Expected calibration error of the top class, 10 bins.
    pub ece: f32,
    /// Mean negative log-likelihood of the true class (nats).
    pub nll: f32,
    /// Share of rows with no lexicon or cue hit.
    pub no_evidence: f32,
}

/// Figures of the model on GoEmotions dev, stored in the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextDevFigures {
    /// Five classes, dev as written.
    pub written: TextEval,
    /// Five classes, dev rendered ASR-style (lowercase, no punctuation).
    pub asr: TextEval,
    /// ROC AUC of `frustration` for rows labelled anger (all dev rows), as written.
    pub frustration_auc: f32,
    /// The same, ASR-style.
    pub frustration_auc_asr: f32,
}

/// The trained words model: a softmax over the [`TEXT_FEATURES`] and hashed word and character
/// n-grams, plus a logistic frustration head over the same features. JSON, with the long
/// n-gram rows packed into strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextModel {
    /// File format; must equal [`TEXT_MODEL_FORMAT`].
    pub format: u32,
    /// Lexicon feature names; must equal [`TEXT_FEATURES`].
    pub features: Vec<String>,
    /// Class names; must equal [`CLASSES`].
    pub classes: Vec<String>,
    /// The lexicon-feature weights, the class biases and the temperature (applied to the whole
    /// logit, n-grams included).
    pub softmax: Softmax,
    /// The frustration head's lexicon weights and bias.
    pub frustration: FrustrationHead,
    /// Where it came from.
    pub provenance: TextProvenance,
    /// Measured on the development split the temperature was fitted on.
    pub dev: TextDevFigures,
    /// The hashed n-gram weights (last: the long part of the file).
    pub ngrams: NgramWeights,
}

/// Default location of the shipped model, relative to the repository root.
pub const DEFAULT_TEXT_MODEL: &str = "models/emotion-text.json";
/// Default location of the lexicon files.
pub const DEFAULT_LEXICON_DIR: &str = "models/text";

/// Everything the model reads from a transcript: lexicon features and hashed n-grams.
#[derive(Clone, Debug)]
pub struct TextInput {
    /// Lexicon features and hits.
    pub lexicon: TextFeatures,
    /// Sparse n-gram vector (bucket, value), sorted by bucket.
    pub ngrams: Vec<(u32, f32)>,
}

impl TextModel {
    /// Reads and checks a model file. A file of another format is refused, naming both.
    pub fn load(path: &Path) -> Result<Self, TextError> {
        let s = std::fs::read_to_string(path).map_err(|source| TextError::Io {
            path: path.into(),
            source,
        })?;
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default = "format_one")]
            format: u32,
        }
        fn format_one() -> u32 {
            1
        }
        let probe: Probe = serde_json::from_str(&s).map_err(|source| TextError::Json {
            path: path.into(),
            source,
        })?;
        if probe.format != TEXT_MODEL_FORMAT {
            return Err(TextError::Mismatch {
                reason: format!(
                    "{} is text model format {}{}; this build reads format {TEXT_MODEL_FORMAT} \
                     (lexicon features + hashed n-grams + frustration): retrain it with \
                     `callmood train-text`",
                    path.display(),
                    probe.format,
                    if probe.format == 1 {
                        " (the 12 lexicon features alone)"
                    } else {
                        ""
                    }
                ),
            });
        }
        let m: Self = serde_json::from_str(&s).map_err(|source| TextError::Json {
            path: path.into(),
            source,
        })?;
        m.validate()?;
        Ok(m)
    }

    /// Checks format, names and shapes against this build.
    pub fn validate(&self) -> Result<(), TextError> {
        let bad = |reason: String| Err(TextError::Mismatch { reason });
        if self.format != TEXT_MODEL_FORMAT {
            return bad(format!(
                "format {}, this build reads {TEXT_MODEL_FORMAT}",
                self.format
            ));
        }
        if self.features != TEXT_FEATURES {
            return bad(format!(
                "features {:?}, this build computes {:?}",
                self.features, TEXT_FEATURES
            ));
        }
        if self.classes != CLASSES {
            return bad(format!(
                "classes {:?}, expected {:?}",
                self.classes, CLASSES
            ));
        }
        self.softmax
            .validate(N_TEXT_FEATURES, N_CLASSES)
            .map_err(|reason| TextError::Mismatch { reason })?;
        let ng = &self.ngrams;
        if !BITS_RANGE.contains(&ng.bits) {
            return bad(format!("n-gram table of 2^{} buckets", ng.bits));
        }
        let buckets = 1usize << ng.bits;
        if ng.classes.len() != N_CLASSES {
            return bad(format!(
                "{} n-gram rows, expected {N_CLASSES}",
                ng.classes.len()
            ));
        }
        let rows = ng.classes.iter().chain([&ng.frustration]);
        if let Some(r) = rows.clone().find(|r| r.0.len() != buckets) {
            return bad(format!(
                "n-gram row of {} weights, expected {buckets}",
                r.0.len()
            ));
        }
        let f = &self.frustration;
        if f.lexicon.len() != N_TEXT_FEATURES {
            return bad(format!("frustration head has {} weights", f.lexicon.len()));
        }
        let finite = rows
            .flat_map(|r| &r.0)
            .chain(&f.lexicon)
            .chain([&f.bias])
            .all(|v| v.is_finite());
        if !finite {
            return bad("non-finite weight".into());
        }
        Ok(())
    }

    /// The features of a transcript: lexicon analysis and hashed n-grams.
    pub fn input(&self, lexicon: &TextLexicon, transcript: &str) -> TextInput {
        let mut ngrams = Vec::new();
        ngrams::ngram_features(
            &ngrams::ngram_words(transcript),
            self.ngrams.bits,
            &mut ngrams,
        );
        TextInput {
            lexicon: lexicon.analyse(transcript),
            ngrams,
        }
    }

    /// Raw class logits (before the temperature) of lexicon features `x` and n-grams `ng`.
    pub fn logits(&self, x: &[f32; N_TEXT_FEATURES], ng: &[(u32, f32)]) -> [f32; N_CLASSES] {
        let mut out = [0.0; N_CLASSES];
        self.softmax.logits_into(x, &mut out);
        for (o, row) in out.iter_mut().zip(&self.ngrams.classes) {
            *o += ng.iter().map(|&(b, v)| row.0[b as usize] * v).sum::<f32>();
        }
        out
    }

    /// Calibrated probabilities of lexicon features `x` and n-grams `ng`.
    pub fn probs(&self, x: &[f32; N_TEXT_FEATURES], ng: &[(u32, f32)]) -> [f32; N_CLASSES] {
        let mut p = self.logits(x, ng);
        let t = self.softmax.temperature.max(1e-3);
        p.iter_mut().for_each(|v| *v /= t);
        super::softmax_in_place(&mut p);
        p
    }

    /// The frustration score, 0..1, of lexicon features `x` and n-grams `ng`.
    pub fn frustration(&self, x: &[f32; N_TEXT_FEATURES], ng: &[(u32, f32)]) -> f32 {
        let f = &self.frustration;
        let z = f.bias
            + f.lexicon.iter().zip(x).map(|(w, x)| w * x).sum::<f32>()
            + ng.iter()
                .map(|&(b, v)| self.ngrams.frustration.0[b as usize] * v)
                .sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    /// What the model says when the words say nothing (an empty transcript): its prior, the
    /// intercept alone. The baseline of [`TextScore::evidence`].
    pub fn no_evidence_probs(&self) -> [f32; N_CLASSES] {
        self.probs(&[0.0; N_TEXT_FEATURES], &[])
    }

    /// Scores a transcript.
    pub fn score(&self, lexicon: &TextLexicon, transcript: &str) -> TextScore {
        self.score_input(&self.input(lexicon, transcript))
    }

    /// Scores features already computed with [`TextModel::input`].
    pub fn score_input(&self, input: &TextInput) -> TextScore {
        let f = &input.lexicon;
        let probs = self.probs(&f.values, &input.ngrams);
        let baseline_probs = self.no_evidence_probs();
        let evidence = 0.5
            * probs
                .iter()
                .zip(&baseline_probs)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>();
        let top = super::metrics::argmax(&probs);
        // Centred weights of the top class: softmax ignores what all logits share.
        let t = self.softmax.temperature.max(1e-3);
        let push: Vec<f32> = (0..N_TEXT_FEATURES)
            .map(|j| {
                let mean =
                    self.softmax.weights.iter().map(|r| r[j]).sum::<f32>() / N_CLASSES as f32;
                (self.softmax.weights[top][j] - mean) / t
            })
            .collect();
        let share = |num: f32, den: f32| if den != 0.0 { num / den } else { 0.0 };
        let mut hits: Vec<TextHit> = f
            .hits
            .iter()
            .map(|h| {
                let mut weight = 0.0;
                for &s in &h.parts {
                    if s > 0.0 {
                        weight += push[0] * f.values[0] * share(s + 1.0, f.pos_sum);
                    } else {
                        weight += push[1] * f.values[1] * share(1.0 - s, f.neg_sum);
                    }
                    weight += push[2] * f.values[2] * share(s, f.sentiment_sum);
                }
                if let Some(c) = h.class {
                    let j = CUE_FEATURE + c;
                    weight += push[j] * f.values[j] / f.cue_counts[c].max(1) as f32;
                }
                TextHit {
                    phrase: h.phrase.clone(),
                    class: h.class,
                    valence: h.sentiment,
                    weight,
                }
            })
            .collect();
        hits.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        TextScore {
            probs,
            valence: f.values[2],
            frustration: self.frustration(&f.values, &input.ngrams),
            evidence,
            baseline_probs,
            hits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEX: &str = "happy\t2.7\t0\t[]\ngood\t1.9\t0\t[]\ngreat\t3.1\t0\t[]\nbad\t-2.5\t0\t[]\n\
        worried\t-1.2\t0\t[]\nridiculous\t-1.5\t0\t[]\ncancel\t-1.0\t0\t[]\nno\t-1.2\t0\t[]\n\
        kind\t2.4\t0\t[]\nthanks\t1.9\t0\t[]\n";
    const NEG: &str = "# negations\nnot\nnever\ncan't\ncant\n";
    const BOOST: &str =
        "# boosters\nvery\t0.293\nreally\t0.293\nslightly\t-0.293\nkind of\t-0.293\n";
    const CUES: &str = "# cues\nworried\tfearful\ni'm worried\tfearful\ncancel\tangry\n\
        cancel my account\tangry\nthis is ridiculous\tangry\ncan't afford\tsad\n\
        thank you so much\thappy\n";

    fn lex() -> TextLexicon {
        TextLexicon::from_strs(LEX, NEG, BOOST, CUES).unwrap()
    }

    fn compound(text: &str) -> f32 {
        lex().analyse(text).values[2]
    }

    #[test]
    fn tokens_lowercase_keep_inner_apostrophes_and_drop_annotations() {
        let t = tokenise("I’M here, 'really' [BLANK_AUDIO] don't (music) stop!");
        let words: Vec<&str> = t.words.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(words, ["i'm", "here", "really", "don't", "stop"]);
        assert_eq!(t.words[0].clause, 0);
        assert_eq!(t.words[2].clause, 1);
        assert_eq!(t.exclamations, 1);
    }

    /// Reference values from vaderSentiment 3.3.2's `polarity_scores` (Python).
    #[test]
    fn valence_matches_vader_on_plain_sentences() {
        assert!((compound("happy") - 0.5719).abs() < 1e-3);
        assert!((compound("very happy") - 0.6115).abs() < 1e-3);
        assert!((compound("I'm not happy") - -0.4585).abs() < 1e-3);
    }

    #[test]
    fn negation_flips_and_damps() {
        let (p, n) = (compound("happy"), compound("not happy"));
        assert!(p > 0.5 && n < 0.0);
        // Flipped and damped: |−0.74 × 2.7| < 2.7.
        assert!(n.abs() < p);
        // Within three words, and curly apostrophes count as negations too.
        assert!(compound("I can’t say I'm happy") < 0.0);
        // Not across a clause break.
        assert!(compound("No, not that. Happy.") > 0.0);
    }

    #[test]
    fn boosters_and_dampeners() {
        let base = compound("good");
        assert!(compound("really good") > base);
        assert!(compound("slightly good") < base);
        assert!(compound("kind of good") < base);
        assert!(compound("very bad") < compound("bad"));
    }

    #[test]
    fn but_weights_the_second_clause() {
        // Without the "but" the positive word outweighs the negative one; with it, not.
        assert!(compound("great and bad") > 0.0);
        assert!(compound("great but bad") < 0.0);
    }

    #[test]
    fn cue_phrases_longest_first_and_negation_aware() {
        let l = lex();
        let f = l.analyse("This is ridiculous, I want to cancel my account.");
        assert_eq!(f.cue_counts[2], 2);
        let phrases: Vec<&str> = f.hits.iter().map(|h| h.phrase.as_str()).collect();
        assert!(phrases.contains(&"this is ridiculous"));
        assert!(phrases.contains(&"cancel my account"));
        // "ridiculous" and "cancel" are scored inside their cues, not again alone.
        assert_eq!(f.hits.len(), 2);
        assert!(f.hits.iter().all(|h| h.sentiment < 0.0));

        let worried = l.analyse("I'm worried about it");
        assert_eq!(worried.cue_counts[4], 1);
        assert_eq!(worried.hits[0].phrase, "i'm worried");
        let not = l.analyse("I'm not worried about it");
        assert_eq!(not.cue_counts[4], 0);
        // The negated word stays a hit (positive now), with its negation in the phrase.
        assert_eq!(not.hits.len(), 1);
        assert_eq!(not.hits[0].phrase, "not worried");
        assert!(not.hits[0].sentiment > 0.0);
    }

    #[test]
    fn apostrophes_are_normalised_for_cues_and_negations() {
        let l = lex();
        for s in [
            "I can't afford it",
            "I can’t afford it",
            "I CAN`T AFFORD IT",
        ] {
            assert_eq!(l.analyse(s).cue_counts[3], 1, "{s}");
        }
        // A negation inside the cue itself does not negate it.
        assert!(l.analyse("I can't afford it").values[CUE_FEATURE + 3] > 0.0);
    }

    fn toy_model() -> TextModel {
        let mut weights = vec![vec![0.0; N_TEXT_FEATURES]; N_CLASSES];
        weights[1][0] = 3.0; // positive → happy
        weights[2][1] = 2.0; // negative → angry
        weights[2][CUE_FEATURE + 2] = 2.0;
        weights[4][CUE_FEATURE + 4] = 2.0;
        weights[0][11] = 0.5; // longer → neutral
        let bits = 8;
        let row = |v: f32| PackedRow(vec![v; 1 << bits]);
        let mut frustration = vec![0.0; N_TEXT_FEATURES];
        frustration[CUE_FEATURE + 2] = 3.0;
        TextModel {
            format: TEXT_MODEL_FORMAT,
            features: TEXT_FEATURES.iter().map(|s| s.to_string()).collect(),
            classes: CLASSES.iter().map(|s| s.to_string()).collect(),
            softmax: Softmax {
                weights,
                bias: vec![0.5, 0.0, -0.2, -0.3, -0.1],
                temperature: 1.2,
            },
            frustration: FrustrationHead {
                lexicon: frustration,
                bias: -1.0,
            },
            provenance: TextProvenance::default(),
            dev: TextDevFigures::default(),
            ngrams: NgramWeights {
                hash: NGRAM_HASH.into(),
                bits,
                classes: (0..N_CLASSES).map(|c| row(0.1 * c as f32)).collect(),
                frustration: row(0.0),
            },
        }
    }

    #[test]
    fn empty_text_has_no_evidence_and_words_have_some() {
        let (m, l) = (toy_model(), lex());
        m.validate().unwrap();
        for s in ["", "   ", "[BLANK_AUDIO]", "?!"] {
            let sc = m.score(&l, s);
            assert!(sc.hits.is_empty());
            if s != "?!" {
                assert_eq!(sc.evidence, 0.0, "{s:?}");
                assert_eq!(sc.probs, m.no_evidence_probs());
            }
            assert_eq!(sc.baseline_probs, m.no_evidence_probs());
        }
        // No lexicon hit, but the n-grams still move the model off its prior.
        let plain = m.score(&l, "my account number is four five six");
        assert!(plain.hits.is_empty());
        assert_eq!(plain.valence, 0.0);
        assert!(plain.evidence > 0.0);
    }

    #[test]
    fn frustration_follows_its_head() {
        let (m, l) = (toy_model(), lex());
        let calm = m.score(&l, "my account number is four five six");
        let cross = m.score(&l, "This is ridiculous, I want to cancel.");
        assert!((0.0..=1.0).contains(&calm.frustration));
        assert!(cross.frustration > calm.frustration + 0.3);
    }

    #[test]
    fn weights_round_trip_through_the_file() {
        let mut m = toy_model();
        m.ngrams.classes[2].0[7] = round_weight(-0.012_345_67);
        assert_eq!(m.ngrams.classes[2].0[7], -0.01235);
        let json = serde_json::to_string_pretty(&m).unwrap();
        let back: TextModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn old_format_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("callmood-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("old.json");
        std::fs::write(&p, r#"{"features": [], "classes": [], "softmax": {}}"#).unwrap();
        let e = TextModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("format 1") && e.contains("train-text"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hits_explain_the_top_class() {
        let (m, l) = (toy_model(), lex());
        let sc = m.score(&l, "This is ridiculous, I want to cancel.");
        assert_eq!(super::super::metrics::argmax(&sc.probs), 2);
        assert!(sc.evidence > 0.1 && sc.evidence <= 1.0);
        assert_eq!(sc.hits.len(), 2);
        assert!(sc.hits.iter().all(|h| h.weight > 0.0 && h.class == Some(2)));
        assert!((sc.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn mismatched_model_is_refused() {
        let mut m = toy_model();
        m.features.swap(0, 1);
        assert!(matches!(m.validate(), Err(TextError::Mismatch { .. })));
        let mut m = toy_model();
        m.softmax.weights[0].pop();
        assert!(m.validate().is_err());
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = TextLexicon::from_strs(LEX, NEG, BOOST, "# c\nworried\tnervous\n").unwrap_err();
        assert!(e.to_string().contains("cues.tsv line 2"), "{e}");
        assert!(TextLexicon::from_strs("x\tnot-a-number\n", NEG, BOOST, CUES).is_err());
    }
}
