//! Training and measuring the words model: labelled text in, a [`TextModel`] and its
//! figures out. Parsing takes file contents (`&str`); only the two `read_*` wrappers touch the
//! file system.

use std::path::Path;

use rayon::prelude::*;

use crate::emotion::linear::Softmax;
use crate::emotion::metrics;
use crate::emotion::text::ngrams::{ngram_features, ngram_words};
use crate::emotion::text::{
    round_weight, FrustrationHead, NgramWeights, PackedRow, TextDevFigures, TextError, TextEval,
    TextLexicon, TextModel, TextProvenance, NGRAM_HASH, N_TEXT_FEATURES, TEXT_FEATURES,
    TEXT_MODEL_FORMAT, WEIGHT_DIGITS,
};
use crate::emotion::{class_of_label, is_excluded_label, CLASSES, N_CLASSES};

/// Bins of the calibration error, as everywhere in the project's reports.
const ECE_BINS: usize = 10;

/// One labelled transcript or sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledText {
    /// The words.
    pub text: String,
    /// Class index into [`CLASSES`].
    pub class: usize,
}

/// What happened to the rows of a GoEmotions split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitStats {
    /// Rows kept, per class.
    pub kept: [usize; N_CLASSES],
    /// Rows whose only labels are surprise (left out of the five classes).
    pub surprise_only: usize,
    /// Rows whose labels map to two or more different classes (ambiguous, left out).
    pub mixed: usize,
}

/// How GoEmotions rows become training rows; written into the model's provenance.
pub const GOEMOTIONS_MAPPING: &str = "Ekman labels: joy->happy, anger and disgust->angry, \
fear->fearful, sadness->sad, neutral->neutral. Surprise is dropped from a row's labels; a row is \
kept when its remaining labels all map to one class (so anger+disgust is angry, joy+surprise is \
happy) and left out when they map to two or more classes (e.g. joy+sadness, neutral+anger) or to \
none (surprise only).";

/// Parses one GoEmotions split (`text <TAB> comma-separated label ids <TAB> id`, no header)
/// with `labels` the label names by id (the lines of its `labels.txt`). `file` names the
/// split in errors.
pub fn parse_goemotions(
    contents: &str,
    labels: &[String],
    file: &str,
) -> Result<(Vec<LabelledText>, SplitStats), TextError> {
    let (rows, stats) = parse_goemotions_rows(contents, labels, file)?;
    Ok((in_five_classes(&rows), stats))
}

/// The rows that belong to one of the five classes, as labelled texts.
fn in_five_classes(rows: &[GoRow]) -> Vec<LabelledText> {
    rows.iter()
        .filter_map(|r| {
            Some(LabelledText {
                text: r.text.clone(),
                class: r.class?,
            })
        })
        .collect()
}

/// Parses a GoEmotions split like [`parse_goemotions`], keeping every row: those left out of
/// the five classes have `class: None`, and every row says whether it was labelled anger.
pub fn parse_goemotions_rows(
    contents: &str,
    labels: &[String],
    file: &str,
) -> Result<(Vec<GoRow>, SplitStats), TextError> {
    let bad = |line: usize, reason: String| TextError::Parse {
        file: file.into(),
        line: line + 1,
        reason,
    };
    let mut rows = Vec::new();
    let mut stats = SplitStats::default();
    for (n, line) in contents.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(text), Some(ids)) = (cols.next(), cols.next()) else {
            return Err(bad(n, "expected text<TAB>label ids<TAB>id".into()));
        };
        let mut class = None;
        let mut mixed = false;
        let mut anger = false;
        for id in ids.split(',') {
            let name = id
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|i| labels.get(i))
                .ok_or_else(|| bad(n, format!("label id {id:?} is not in labels.txt")))?;
            anger |= name == "anger";
            match class_of_label(name) {
                Some(c) if class.is_some_and(|k| k != c) => mixed = true,
                Some(c) => class = Some(c),
                None if is_excluded_label(name) => {}
                None => return Err(bad(n, format!("label {name:?} has no class"))),
            }
        }
        let class = match (class, mixed) {
            (_, true) => {
                stats.mixed += 1;
                None
            }
            (None, false) => {
                stats.surprise_only += 1;
                None
            }
            (Some(c), false) => {
                stats.kept[c] += 1;
                Some(c)
            }
        };
        rows.push(GoRow {
            text: text.to_string(),
            class,
            anger,
        });
    }
    if stats.kept.iter().sum::<usize>() == 0 {
        return Err(TextError::Empty { what: file.into() });
    }
    Ok((rows, stats))
}

/// Parses labelled sentences: `text <TAB> class name` a line; `#` lines are comments.
pub fn parse_sentences(contents: &str, file: &str) -> Result<Vec<LabelledText>, TextError> {
    let mut rows = Vec::new();
    for (n, line) in contents.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .rsplit_once('\t')
            .and_then(|(text, label)| Some((text, class_of_label(label)?)));
        let Some((text, class)) = parsed else {
            return Err(TextError::Parse {
                file: file.into(),
                line: n + 1,
                reason: "expected text<TAB>class (neutral, happy, angry, sad, fearful)".into(),
            });
        };
        rows.push(LabelledText {
            text: text.to_string(),
            class,
        });
    }
    if rows.is_empty() {
        return Err(TextError::Empty { what: file.into() });
    }
    Ok(rows)
}

fn read(path: &Path) -> Result<String, TextError> {
    std::fs::read_to_string(path).map_err(|source| TextError::Io {
        path: path.into(),
        source,
    })
}

/// Reads `split` (e.g. `train.tsv`) of the GoEmotions directory `dir`, with its `labels.txt`.
pub fn read_goemotions(
    dir: &Path,
    split: &str,
) -> Result<(Vec<LabelledText>, SplitStats), TextError> {
    parse_goemotions(&read(&dir.join(split))?, &read_labels(dir)?, split)
}

/// Reads every row of a GoEmotions split (see [`parse_goemotions_rows`]).
pub fn read_goemotions_rows(
    dir: &Path,
    split: &str,
) -> Result<(Vec<GoRow>, SplitStats), TextError> {
    parse_goemotions_rows(&read(&dir.join(split))?, &read_labels(dir)?, split)
}

/// Reads a file in a GoEmotions split's format (`text<TAB>label ids<TAB>id`) whose label ids
/// are those of the GoEmotions directory `dir`'s `labels.txt`: for example Whisper's
/// transcripts of spoken rows (`tools/asr_text_data.py`).
pub fn read_goemotions_rows_file(
    dir: &Path,
    file: &Path,
) -> Result<(Vec<GoRow>, SplitStats), TextError> {
    parse_goemotions_rows(
        &read(file)?,
        &read_labels(dir)?,
        &file.display().to_string(),
    )
}

fn read_labels(dir: &Path) -> Result<Vec<String>, TextError> {
    Ok(read(&dir.join("labels.txt"))?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Reads VADER-style graded ratings (see [`parse_ratings`]).
pub fn read_ratings(path: &Path) -> Result<Vec<(String, f64)>, TextError> {
    parse_ratings(&read(path)?, &path.display().to_string())
}

/// Reads a labelled sentence file (see [`parse_sentences`]).
pub fn read_sentences(path: &Path) -> Result<Vec<LabelledText>, TextError> {
    parse_sentences(&read(path)?, &path.display().to_string())
}

/// A GoEmotions row as the trainer sees it: the five-class label where it has one, and
/// whether raters gave it anger (which in the Ekman grouping includes annoyance and
/// disapproval): the frustration label, defined on every row.
#[derive(Clone, Debug, PartialEq)]
pub struct GoRow {
    /// The words.
    pub text: String,
    /// Class index into [`CLASSES`], `None` for rows left out of the five classes.
    pub class: Option<usize>,
    /// Labelled anger.
    pub anger: bool,
}

/// How the frustration head's labels are made; written into the model's provenance.
pub const FRUSTRATION_MAPPING: &str = "GoEmotions rows labelled anger (Ekman: anger, annoyance, \
disapproval) are frustrated, every other row (all labels, mixed and surprise-only rows included) \
is not; class-balanced.";

/// Renders text as an ASR engine would write it: lowercase, bracketed annotations dropped,
/// every character but letters, digits and an apostrophe inside a word removed, spaces
/// collapsed. Used to train on such text and to measure on it.
pub fn asr_style(text: &str) -> String {
    crate::emotion::text::ngrams::asr_words(text).join(" ")
}

/// Trainer settings of the sparse model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseFitConfig {
    /// The n-gram table has 2^bits buckets.
    pub bits: u32,
    /// L2 penalty per training row (the objective is the mean class-weighted loss plus
    /// l2/2 · ||w||²). Applied lazily: a weight a share f of the rows touch is decayed by
    /// l2 / f each time one does, so rare n-grams are shrunk as much as common ones.
    pub l2: f32,
    /// Passes over the training rows.
    pub epochs: usize,
    /// AdaGrad step size.
    pub learning_rate: f32,
    /// Seed of the row order (a fixed xorshift64 sequence: the same file every run).
    pub seed: u64,
}

/// One featurised training row.
struct Row {
    lex: [f32; N_TEXT_FEATURES],
    ng: Vec<(u32, f32)>,
    class: Option<usize>,
    anger: bool,
}

fn featurise_rows(
    lexicon: &TextLexicon,
    bits: u32,
    rows: impl IntoParallelIterator<Item = (String, Option<usize>, bool)>,
) -> Vec<Row> {
    rows.into_par_iter()
        .map(|(text, class, anger)| {
            let mut ng = Vec::new();
            ngram_features(&ngram_words(&text), bits, &mut ng);
            Row {
                lex: lexicon.analyse(&text).values,
                ng,
                class,
                anger,
            }
        })
        .collect()
}

/// AdaGrad state of one weight vector.
struct Ada {
    w: Vec<f32>,
    g2: Vec<f32>,
}

impl Ada {
    fn new(n: usize) -> Self {
        Self {
            w: vec![0.0; n],
            g2: vec![0.0; n],
        }
    }
    fn step(&mut self, i: usize, grad: f32, lr: f32) {
        self.g2[i] += grad * grad;
        self.w[i] -= lr * grad / (self.g2[i].sqrt() + 1e-8);
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Fits the words model: multinomial logistic regression (five classes) and a logistic
/// frustration head over the lexicon features and hashed n-grams, by AdaGrad over the rows of
/// `train` and of their [`asr_style`] copies, class-balanced, in a seeded order, single
/// threaded (so deterministic). The weights are then rounded as the file stores them, the
/// temperature is fitted on `dev` (as written), and the figures are measured on `dev` as
/// written and ASR-style.
pub fn train(
    lexicon: &TextLexicon,
    train: &[GoRow],
    dev: &[GoRow],
    cfg: &SparseFitConfig,
    mut provenance: TextProvenance,
) -> TextModel {
    let both = train
        .iter()
        .map(|r| (r.text.clone(), r.class, r.anger))
        .chain(train.iter().map(|r| (asr_style(&r.text), r.class, r.anger)))
        .collect::<Vec<_>>();
    let rows = featurise_rows(lexicon, cfg.bits, both);
    let buckets = 1usize << cfg.bits;
    let (k, d) = (N_CLASSES, N_TEXT_FEATURES);

    // Balanced weights: every class (and both frustration labels) weighs the same in total.
    let mut counts = [0usize; N_CLASSES];
    rows.iter()
        .filter_map(|r| r.class)
        .for_each(|c| counts[c] += 1);
    let labelled: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    let class_w: Vec<f32> = counts
        .iter()
        .map(|&c| labelled as f32 / (present * c.max(1)) as f32)
        .collect();
    let angry = rows.iter().filter(|r| r.anger).count();
    let anger_w = [
        rows.len() as f32 / (2 * (rows.len() - angry).max(1)) as f32,
        rows.len() as f32 / (2 * angry.max(1)) as f32,
    ];

    // Class c's lexicon weights at c*d.., its bias at k*d + c; n-gram weights at c*buckets + b.
    let mut dense = Ada::new(k * d + k);
    let mut ng = Ada::new(k * buckets);
    let mut fdense = Ada::new(d + 1);
    let mut fng = Ada::new(buckets);
    // Per-touch L2 of each n-gram bucket: l2 over the share of rows touching it, per head.
    let touch_l2 = |rows: &mut dyn Iterator<Item = &Row>| -> Vec<f32> {
        let mut n = 0usize;
        let mut hits = vec![0u32; buckets];
        for r in rows {
            n += 1;
            r.ng.iter().for_each(|&(b, _)| hits[b as usize] += 1);
        }
        hits.iter()
            .map(|&h| cfg.l2 * n as f32 / h.max(1) as f32)
            .collect()
    };
    let class_l2 = touch_l2(&mut rows.iter().filter(|r| r.class.is_some()));
    let anger_l2 = touch_l2(&mut rows.iter());
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut seed = cfg.seed.max(1);
    let (lr, l2) = (cfg.learning_rate, cfg.l2);
    let mut p = [0.0f32; N_CLASSES];
    for _ in 0..cfg.epochs {
        // Fisher-Yates with the seeded generator.
        for i in (1..order.len()).rev() {
            let j = (xorshift(&mut seed) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &i in &order {
            let r = &rows[i];
            if let Some(y) = r.class {
                for (c, pc) in p.iter_mut().enumerate() {
                    *pc = dense.w[k * d + c]
                        + (0..d).map(|j| dense.w[c * d + j] * r.lex[j]).sum::<f32>()
                        + r.ng
                            .iter()
                            .map(|&(b, v)| ng.w[c * buckets + b as usize] * v)
                            .sum::<f32>();
                }
                crate::emotion::softmax_in_place(&mut p);
                for (c, &pc) in p.iter().enumerate() {
                    let g = class_w[y] * (pc - f32::from(u8::from(c == y)));
                    for j in 0..d {
                        let at = c * d + j;
                        let grad = g * r.lex[j] + l2 * dense.w[at];
                        dense.step(at, grad, lr);
                    }
                    dense.step(k * d + c, g, lr);
                    for &(b, v) in &r.ng {
                        let at = c * buckets + b as usize;
                        let grad = g * v + class_l2[b as usize] * ng.w[at];
                        ng.step(at, grad, lr);
                    }
                }
            }
            let z = fdense.w[d]
                + (0..d).map(|j| fdense.w[j] * r.lex[j]).sum::<f32>()
                + r.ng
                    .iter()
                    .map(|&(b, v)| fng.w[b as usize] * v)
                    .sum::<f32>();
            let s = 1.0 / (1.0 + (-z).exp());
            let g = anger_w[usize::from(r.anger)] * (s - f32::from(u8::from(r.anger)));
            for j in 0..d {
                let grad = g * r.lex[j] + l2 * fdense.w[j];
                fdense.step(j, grad, lr);
            }
            fdense.step(d, g, lr);
            for &(b, v) in &r.ng {
                let grad = g * v + anger_l2[b as usize] * fng.w[b as usize];
                fng.step(b as usize, grad, lr);
            }
        }
    }

    let round = |v: &[f32]| v.iter().map(|&x| round_weight(x)).collect::<Vec<f32>>();
    let softmax = Softmax {
        weights: (0..k)
            .map(|c| round(&dense.w[c * d..(c + 1) * d]))
            .collect(),
        bias: round(&dense.w[k * d..]),
        temperature: 1.0,
    };
    let count = |it: &mut dyn Iterator<Item = usize>| -> Vec<usize> {
        let mut v = vec![0; N_CLASSES];
        it.for_each(|c| v[c] += 1);
        v
    };
    provenance.train_rows = count(&mut train.iter().filter_map(|r| r.class));
    provenance.dev_rows = count(&mut dev.iter().filter_map(|r| r.class));
    provenance.frustration_labels = format!(
        "{FRUSTRATION_MAPPING} Train: {} of {} rows labelled anger.",
        train.iter().filter(|r| r.anger).count(),
        train.len()
    );
    provenance.fit = format!(
        "train::text::train: AdaGrad, step {}, L2 {} per row, {} epochs over train.tsv and its \
         ASR-style copy, xorshift64 order from seed {}, class-balanced; n-gram table 2^{}; \
         weights rounded to {WEIGHT_DIGITS} significant digits; temperature fitted on dev.tsv",
        cfg.learning_rate, cfg.l2, cfg.epochs, cfg.seed, cfg.bits
    );
    let mut model = TextModel {
        format: TEXT_MODEL_FORMAT,
        features: TEXT_FEATURES.iter().map(|s| s.to_string()).collect(),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        softmax,
        frustration: FrustrationHead {
            lexicon: round(&fdense.w[..d]),
            bias: round_weight(fdense.w[d]),
        },
        provenance,
        dev: TextDevFigures::default(),
        ngrams: NgramWeights {
            hash: NGRAM_HASH.into(),
            bits: cfg.bits,
            classes: (0..k)
                .map(|c| PackedRow(round(&ng.w[c * buckets..(c + 1) * buckets])))
                .collect(),
            frustration: PackedRow(round(&fng.w)),
        },
    };

    let labelled_dev = in_five_classes(dev);
    let (logits, yd): (Vec<Vec<f32>>, Vec<usize>) = labelled_dev
        .iter()
        .map(|r| {
            let x = model.input(lexicon, &r.text);
            (model.logits(&x.lexicon.values, &x.ngrams).to_vec(), r.class)
        })
        .unzip();
    model.softmax.temperature = round_weight(metrics::fit_temperature(&logits, &yd));
    model.dev = dev_figures(&model, lexicon, dev);
    model
}

/// The figures stored in the model: five classes and frustration AUC on `dev` as written and
/// ASR-style.
pub fn dev_figures(model: &TextModel, lexicon: &TextLexicon, dev: &[GoRow]) -> TextDevFigures {
    let asr: Vec<GoRow> = dev
        .iter()
        .map(|r| GoRow {
            text: asr_style(&r.text),
            ..r.clone()
        })
        .collect();
    let five = |rows: &[GoRow]| evaluate(model, lexicon, &in_five_classes(rows));
    TextDevFigures {
        written: five(dev),
        asr: five(&asr),
        frustration_auc: frustration_auc(model, lexicon, dev),
        frustration_auc_asr: frustration_auc(model, lexicon, &asr),
    }
}

/// ROC AUC of the frustration score for rows labelled anger against the rest (ties count
/// half); 0.5 when one side is empty.
pub fn frustration_auc(model: &TextModel, lexicon: &TextLexicon, rows: &[GoRow]) -> f32 {
    let scored: Vec<(f32, bool)> = rows
        .iter()
        .map(|r| (model.score(lexicon, &r.text).frustration, r.anger))
        .collect();
    let s: Vec<f64> = scored.iter().map(|p| f64::from(p.0)).collect();
    let ranks = average_ranks(&s);
    let pos = scored.iter().filter(|p| p.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(&scored)
        .filter(|(_, p)| p.1)
        .map(|(r, _)| r)
        .sum();
    ((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64) as f32
}

/// 1-based ranks, ties given their average rank.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's ρ (Pearson correlation of average ranks); 0 when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (average_ranks(a), average_ranks(b));
    let n = ra.len().min(rb.len()) as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// VADER's sentence-level ground truth (`id <TAB> mean rating -4..4 <TAB> text` a line, as in
/// the `hutto_ICWSM_2014` files): (text, mean rating).
pub fn parse_ratings(contents: &str, file: &str) -> Result<Vec<(String, f64)>, TextError> {
    let mut rows = Vec::new();
    for (n, line) in contents.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let parsed = (cols.next(), cols.next(), cols.next());
        let (Some(_), Some(mean), Some(text)) = parsed else {
            return Err(TextError::Parse {
                file: file.into(),
                line: n + 1,
                reason: "expected id<TAB>mean rating<TAB>text".into(),
            });
        };
        let mean: f64 = mean.trim().parse().map_err(|_| TextError::Parse {
            file: file.into(),
            line: n + 1,
            reason: "mean rating is not a number".into(),
        })?;
        rows.push((text.to_string(), mean));
    }
    if rows.is_empty() {
        return Err(TextError::Empty { what: file.into() });
    }
    Ok(rows)
}

/// Scores labelled texts and measures UAR, recalls, confusion, ECE and NLL.
pub fn evaluate(model: &TextModel, lexicon: &TextLexicon, rows: &[LabelledText]) -> TextEval {
    let mut probs = Vec::with_capacity(rows.len());
    let mut y = Vec::with_capacity(rows.len());
    let mut no_evidence = 0usize;
    for r in rows {
        let s = model.score(lexicon, &r.text);
        no_evidence += usize::from(s.hits.is_empty());
        probs.push(s.probs.to_vec());
        y.push(r.class);
    }
    let pred: Vec<usize> = probs.iter().map(|p| metrics::argmax(p)).collect();
    let confusion = metrics::confusion(&y, &pred, N_CLASSES);
    // NLL of the calibrated probabilities, the ones the service reports.
    let nll = probs
        .iter()
        .zip(&y)
        .map(|(p, &c)| -(p[c].max(1e-12) as f64).ln())
        .sum::<f64>()
        / rows.len().max(1) as f64;
    TextEval {
        rows: rows.len(),
        uar: metrics::uar(&confusion),
        recalls: metrics::recalls(&confusion),
        ece: metrics::ece(&probs, &y, ECE_BINS),
        nll: nll as f32,
        no_evidence: no_evidence as f32 / rows.len().max(1) as f32,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        "anger disgust fear joy neutral sadness surprise"
            .split(' ')
            .map(String::from)
            .collect()
    }

    #[test]
    fn goemotions_rows_map_to_one_class_or_are_left_out() {
        let tsv = "mad\t0,1\ta\nyay\t3,6\tb\nwow\t6\tc\nmixed\t3,5\td\nok\t4\te\n";
        let (rows, st) = parse_goemotions(tsv, &labels(), "t.tsv").unwrap();
        let classes: Vec<usize> = rows.iter().map(|r| r.class).collect();
        assert_eq!(classes, [2, 1, 0]);
        assert_eq!((st.surprise_only, st.mixed), (1, 1));
        assert_eq!(st.kept, [1, 1, 1, 0, 0]);
        let e = parse_goemotions("x\t9\ti\n", &labels(), "t.tsv").unwrap_err();
        assert!(e.to_string().contains("t.tsv line 1"), "{e}");
    }

    #[test]
    fn every_row_keeps_its_anger_flag() {
        let tsv = "mad\t0,1\ta\nyay\t3,6\tb\nwow\t6\tc\ncross but ok\t0,4\td\n";
        let (rows, _) = parse_goemotions_rows(tsv, &labels(), "t.tsv").unwrap();
        let got: Vec<(Option<usize>, bool)> = rows.iter().map(|r| (r.class, r.anger)).collect();
        assert_eq!(
            got,
            [
                (Some(2), true),
                (Some(1), false),
                (None, false),
                (None, true)
            ]
        );
    }

    #[test]
    fn asr_style_is_lowercase_without_punctuation() {
        assert_eq!(
            asr_style("Hi [NAME], I DON’T know... really?!  OK."),
            "hi i don't know really ok"
        );
    }

    #[test]
    fn ranks_spearman_and_ratings() {
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 25.0, 90.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &[1.0; 4]), 0.0);
        let r = parse_ratings("1\t2.5\tGood\tday\n2\t-1\tbad\n", "r").unwrap();
        assert_eq!(
            r,
            [("Good\tday".to_string(), 2.5), ("bad".to_string(), -1.0)]
        );
        assert!(parse_ratings("1\tx\ttext\n", "r").is_err());
    }

    #[test]
    fn training_is_deterministic_and_learns_a_toy_task() {
        let lex = TextLexicon::from_strs("", "", "", "").unwrap();
        let words = [
            ("all fine thanks", 0, false),
            ("lovely wonderful", 1, false),
            ("furious outrageous", 2, true),
            ("grief heartbroken", 3, false),
            ("scared terrified", 4, false),
        ];
        let rows: Vec<GoRow> = (0..40)
            .map(|i| {
                let (t, c, a) = words[i % 5];
                GoRow {
                    text: format!("{t} {i}"),
                    class: Some(c),
                    anger: a,
                }
            })
            .collect();
        let cfg = SparseFitConfig {
            bits: 10,
            l2: 1e-4,
            epochs: 5,
            learning_rate: 0.1,
            seed: 1,
        };
        let m1 = train(&lex, &rows, &rows, &cfg, TextProvenance::default());
        let m2 = train(&lex, &rows, &rows, &cfg, TextProvenance::default());
        assert_eq!(m1, m2);
        m1.validate().unwrap();
        assert_eq!(m1.dev.written.uar, 1.0);
        assert_eq!(m1.dev.frustration_auc, 1.0);
    }

    #[test]
    fn sentences_parse_with_comments() {
        let rows = parse_sentences("# made up\nHi there.\tneutral\nHelp!\tfearful\n", "s").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].class, 4);
        assert!(parse_sentences("no tab here\n", "s").is_err());
        assert!(parse_sentences("text\tbored\n", "s").is_err());
    }
}
