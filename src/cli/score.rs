//! `callmood score`: the crate's own metrics on plain files, so that the measurement
//! scripts in `tools/` call them instead of keeping copies: word error rate
//! ([`crate::asr::wer`]) and unweighted average recall ([`crate::emotion::metrics`]).
//! JSON on stdout.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use crate::asr::wer::word_errors;
use crate::emotion::metrics::{confusion, recalls, uar};
use crate::emotion::{class_of_label, CLASSES, N_CLASSES};

#[derive(Subcommand, Debug)]
pub enum ScoreCommand {
    /// Word errors of each hypothesis line against the reference line of the same number,
    /// after the recogniser's normalisation (case, punctuation, numbers below 100), and
    /// pooled over all lines (total errors / total reference words).
    Wer {
        /// Reference texts, one per line.
        #[arg(long = "ref")]
        reference: PathBuf,
        /// Hypothesis texts, one per line, as many lines as --ref.
        #[arg(long)]
        hyp: PathBuf,
    },
    /// Unweighted average recall over the five classes, per-class recall and confusion
    /// matrix of (label, predicted) pairs.
    Uar {
        /// CSV with a header row naming the columns `label` and `predicted`; values are class
        /// names or corpus labels (calm, disgust, ...: mapped as `train` maps them).
        #[arg(long)]
        pairs: PathBuf,
    },
}

/// Word errors of one reference/hypothesis pair, or of all of them pooled.
#[derive(Debug, Serialize)]
struct WerCount {
    /// Substitutions + deletions + insertions.
    errors: usize,
    /// Reference words after normalisation.
    words: usize,
    /// `errors / words`; for no reference words 0 without errors, 1 with.
    wer: f64,
}

impl WerCount {
    fn new(errors: usize, words: usize) -> Self {
        let wer = match (errors, words) {
            (0, 0) => 0.0,
            (_, 0) => 1.0,
            _ => errors as f64 / words as f64,
        };
        WerCount { errors, words, wer }
    }

    /// The counts of one pair ([`word_errors`]).
    fn of_pair(reference: &str, hypothesis: &str) -> Self {
        let (errors, words) = word_errors(reference, hypothesis);
        WerCount::new(errors, words)
    }
}

#[derive(Debug, Serialize)]
struct WerReport {
    /// One entry per line, in order.
    pairs: Vec<WerCount>,
    /// All lines pooled.
    total: WerCount,
}

#[derive(Debug, Serialize)]
struct UarReport {
    /// Mean recall over the classes that have examples (0 when none do).
    uar: f32,
    /// Pairs scored.
    n: usize,
    /// Class order of `recalls` and `confusion`.
    classes: [&'static str; N_CLASSES],
    /// Recall per class; `null` for a class without examples.
    recalls: Vec<Option<f32>>,
    /// `[true][predicted]` counts.
    confusion: Vec<Vec<u32>>,
}

pub(super) fn run(command: ScoreCommand) -> anyhow::Result<()> {
    let json = match command {
        ScoreCommand::Wer { reference, hyp } => {
            serde_json::to_string(&score_wer(&read(&reference)?, &read(&hyp)?)?)?
        }
        ScoreCommand::Uar { pairs } => serde_json::to_string(&score_uar(&pairs)?)?,
    };
    println!("{json}");
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn score_wer(reference: &str, hypothesis: &str) -> anyhow::Result<WerReport> {
    let (refs, hyps): (Vec<&str>, Vec<&str>) =
        (reference.lines().collect(), hypothesis.lines().collect());
    anyhow::ensure!(
        refs.len() == hyps.len(),
        "--ref has {} lines and --hyp {}: they are scored line against line",
        refs.len(),
        hyps.len()
    );
    let pairs: Vec<WerCount> = refs
        .iter()
        .zip(&hyps)
        .map(|(r, h)| WerCount::of_pair(r, h))
        .collect();
    let total = WerCount::new(
        pairs.iter().map(|p| p.errors).sum(),
        pairs.iter().map(|p| p.words).sum(),
    );
    Ok(WerReport { pairs, total })
}

fn score_uar(path: &Path) -> anyhow::Result<UarReport> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (label_col, predicted_col) = (column("label")?, column("predicted")?);
    let (mut y_true, mut y_pred) = (Vec::new(), Vec::new());
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}", path.display()))?;
        let class = |col: usize| {
            let value = row.get(col).unwrap_or("");
            class_of_label(value).with_context(|| {
                format!(
                    "{}:{line}: `{value}` is none of {}",
                    path.display(),
                    CLASSES.join(", ")
                )
            })
        };
        y_true.push(class(label_col)?);
        y_pred.push(class(predicted_col)?);
    }
    let confusion = confusion(&y_true, &y_pred, N_CLASSES);
    Ok(UarReport {
        uar: uar(&confusion),
        n: y_true.len(),
        classes: CLASSES,
        recalls: recalls(&confusion),
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_counts_pool_over_lines() {
        let r = score_wer(
            "Ask not, what 10 cats\nhello\n\n",
            "ask what ten cats\nhello there\nhi\n",
        )
        .unwrap();
        let counts: Vec<(usize, usize)> = r.pairs.iter().map(|p| (p.errors, p.words)).collect();
        assert_eq!(counts, [(1, 5), (1, 1), (1, 0)]);
        assert_eq!((r.total.errors, r.total.words), (3, 6));
        assert_eq!(r.total.wer, 0.5);
        assert!(score_wer("a\nb\n", "a\n").is_err());
    }
}
