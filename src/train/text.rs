//! Training and measuring the words model: labelled text in, a [`TextModel`] and its
//! figures out. Parsing takes file contents (`&str`); only the two `read_*` wrappers touch the
//! file system.

use std::path::Path;

use crate::emotion::linear::{self, FitConfig};
use crate::emotion::metrics;
use crate::emotion::text::{
    TextError, TextEval, TextLexicon, TextModel, TextProvenance, TEXT_FEATURES,
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
        for id in ids.split(',') {
            let name = id
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|i| labels.get(i))
                .ok_or_else(|| bad(n, format!("label id {id:?} is not in labels.txt")))?;
            match class_of_label(name) {
                Some(c) if class.is_some_and(|k| k != c) => mixed = true,
                Some(c) => class = Some(c),
                None if is_excluded_label(name) => {}
                None => return Err(bad(n, format!("label {name:?} has no class"))),
            }
        }
        match (class, mixed) {
            (_, true) => stats.mixed += 1,
            (None, false) => stats.surprise_only += 1,
            (Some(c), false) => {
                stats.kept[c] += 1;
                rows.push(LabelledText {
                    text: text.to_string(),
                    class: c,
                });
            }
        }
    }
    if rows.is_empty() {
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
    let labels: Vec<String> = read(&dir.join("labels.txt"))?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    parse_goemotions(&read(&dir.join(split))?, &labels, split)
}

/// Reads a labelled sentence file (see [`parse_sentences`]).
pub fn read_sentences(path: &Path) -> Result<Vec<LabelledText>, TextError> {
    parse_sentences(&read(path)?, &path.display().to_string())
}

/// Feature rows of labelled texts, and their labels.
fn featurise(lexicon: &TextLexicon, rows: &[LabelledText]) -> (Vec<Vec<f32>>, Vec<usize>) {
    rows.iter()
        .map(|r| (lexicon.analyse(&r.text).values.to_vec(), r.class))
        .unzip()
}

/// Fits the words model on `train` (class-balanced, [`linear::fit`]), fits its temperature on
/// `dev` ([`metrics::fit_temperature`]) and measures it there. `provenance` is stored as given
/// apart from the row counts and trainer settings, which are filled in here.
pub fn train(
    lexicon: &TextLexicon,
    train: &[LabelledText],
    dev: &[LabelledText],
    cfg: &FitConfig,
    mut provenance: TextProvenance,
) -> TextModel {
    let (x, y) = featurise(lexicon, train);
    let mut softmax = linear::fit(&x, &y, N_CLASSES, cfg);
    let (xd, yd) = featurise(lexicon, dev);
    let logits: Vec<Vec<f32>> = xd
        .iter()
        .map(|x| {
            let mut l = vec![0.0; N_CLASSES];
            softmax.logits_into(x, &mut l);
            l
        })
        .collect();
    softmax.temperature = metrics::fit_temperature(&logits, &yd);
    let count = |y: &[usize]| -> Vec<usize> {
        (0..N_CLASSES)
            .map(|c| y.iter().filter(|&&k| k == c).count())
            .collect()
    };
    provenance.train_rows = count(&y);
    provenance.dev_rows = count(&yd);
    provenance.fit = format!(
        "linear::fit, class-balanced {}, L2 {}, {} full-batch Adam steps at {}",
        cfg.balance_classes, cfg.l2, cfg.iterations, cfg.learning_rate
    );
    let mut model = TextModel {
        features: TEXT_FEATURES.iter().map(|s| s.to_string()).collect(),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        softmax,
        provenance,
        dev: TextEval::default(),
    };
    model.dev = evaluate(&model, lexicon, dev);
    model
}

/// Scores labelled texts and measures UAR, recalls, confusion, ECE and NLL.
pub fn evaluate(model: &TextModel, lexicon: &TextLexicon, rows: &[LabelledText]) -> TextEval {
    let mut probs = Vec::with_capacity(rows.len());
    let mut y = Vec::with_capacity(rows.len());
    let mut no_evidence = 0usize;
    for r in rows {
        let s = model.score(lexicon, &r.text);
        no_evidence += usize::from(s.evidence == 0.0);
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
    fn sentences_parse_with_comments() {
        let rows = parse_sentences("# made up\nHi there.\tneutral\nHelp!\tfearful\n", "s").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].class, 4);
        assert!(parse_sentences("no tab here\n", "s").is_err());
        assert!(parse_sentences("text\tbored\n", "s").is_err());
    }
}
