//! The `train-text` and `eval-text` commands: file paths in, the model file and a report
//! out. The binary's edge, so errors are `anyhow`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::emotion::text::{TextDevFigures, TextEval, TextLexicon, TextModel, TextProvenance};
use crate::emotion::text::{DEFAULT_LEXICON_DIR, DEFAULT_TEXT_MODEL};
use crate::emotion::CLASSES;
use crate::train::text::{self as text_train, LabelledText, SparseFitConfig, GOEMOTIONS_MAPPING};

/// `callmood train-text`.
#[derive(Args, Debug)]
pub struct TrainTextArgs {
    /// GoEmotions directory (Ekman grouping) with train.tsv, dev.tsv and labels.txt.
    #[arg(long)]
    pub goemotions: PathBuf,
    /// Where to write the model (pretty JSON).
    #[arg(long, default_value = DEFAULT_TEXT_MODEL)]
    pub out: PathBuf,
    /// Directory of the lexicon files (VADER lexicon, negations, boosters, cues).
    #[arg(long, default_value = DEFAULT_LEXICON_DIR)]
    pub lexicon: PathBuf,
    /// L2 penalty, per row that touches a weight (see `train::text::SparseFitConfig`).
    #[arg(long, default_value_t = TEXT_L2)]
    pub l2: f32,
    /// Passes over the training rows.
    #[arg(long, default_value_t = TEXT_EPOCHS)]
    pub epochs: usize,
    /// AdaGrad step size.
    #[arg(long, default_value_t = TEXT_LEARNING_RATE)]
    pub learning_rate: f32,
    /// The n-gram table has 2^bits buckets.
    #[arg(long, default_value_t = TEXT_BITS)]
    pub bits: u32,
    /// More training rows in GoEmotions' format with its label ids, such as Whisper's
    /// transcripts of spoken rows (`tools/asr_text_data.py`); added to train.tsv's rows.
    #[arg(long)]
    pub asr_train: Option<PathBuf>,
    /// How many times each --asr-train row is added (its weight against train.tsv's rows).
    #[arg(long, default_value_t = 1, requires = "asr_train")]
    pub asr_train_repeat: usize,
}

/// Settings of the shipped model (chosen on GoEmotions dev; see models/README.md).
pub const TEXT_L2: f32 = 4e-5;
/// Passes over the training rows.
pub const TEXT_EPOCHS: usize = 20;
/// AdaGrad step size.
pub const TEXT_LEARNING_RATE: f32 = 0.1;
/// log2 of the n-gram buckets (2^14: the best dev UAR of 2^13..2^15, and under 1 MB).
pub const TEXT_BITS: u32 = 14;
/// Seed of the training order.
pub const TEXT_SEED: u64 = 17;

/// `callmood eval-text`.
#[derive(Args, Debug)]
pub struct EvalTextArgs {
    /// Labelled sentences: `text<TAB>class` a line, `#` comments.
    #[arg(
        long,
        required_unless_present = "goemotions",
        conflicts_with = "goemotions"
    )]
    pub sentences: Option<PathBuf>,
    /// Or a GoEmotions split file (its labels.txt beside it), e.g. .../dev.tsv.
    #[arg(long)]
    pub goemotions: Option<PathBuf>,
    /// Graded ratings (`id<TAB>mean -4..4<TAB>text`, VADER's ground-truth files): also prints
    /// Spearman's ρ of -frustration and of the negative share against the mean ratings.
    #[arg(long)]
    pub ratings: Vec<PathBuf>,
    /// The words model.
    #[arg(long, default_value = DEFAULT_TEXT_MODEL)]
    pub model: PathBuf,
    /// Directory of the lexicon files.
    #[arg(long, default_value = DEFAULT_LEXICON_DIR)]
    pub lexicon: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EvalFormat::Text)]
    pub format: EvalFormat,
    /// With --sentences: instead of the figures, one JSON object per sentence as written
    /// (`text`, `class`, `probs` in class order, `frustration`), for measurements that need
    /// the scores themselves (e.g. alert thresholds).
    #[arg(long, requires = "sentences")]
    pub per_line: bool,
}

/// How `eval-text` prints its figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    /// A short table for people.
    Text,
    /// One JSON object.
    Json,
}

/// Trains on train.tsv, calibrates and measures on dev.tsv, writes the model.
pub fn train_text(a: TrainTextArgs) -> anyhow::Result<()> {
    let lexicon = TextLexicon::load(&a.lexicon)?;
    let (mut train, train_stats) = text_train::read_goemotions_rows(&a.goemotions, "train.tsv")?;
    let mut extra_note = String::new();
    if let Some(path) = &a.asr_train {
        if a.asr_train_repeat == 0 {
            anyhow::bail!("--asr-train-repeat must be at least 1");
        }
        let (rows, stats) = text_train::read_goemotions_rows_file(&a.goemotions, path)?;
        extra_note = format!(
            "; plus {} rows of {} ({} in the five classes), each {} times",
            rows.len(),
            path.display(),
            stats.kept.iter().sum::<usize>(),
            a.asr_train_repeat
        );
        for _ in 0..a.asr_train_repeat {
            train.extend(rows.iter().cloned());
        }
    }
    let (dev, dev_stats) = text_train::read_goemotions_rows(&a.goemotions, "dev.tsv")?;
    let provenance = TextProvenance {
        corpus: format!(
            "GoEmotions, Ekman grouping (Demszky et al. 2020; Apache-2.0): train.tsv to fit, \
             dev.tsv for the temperature and the figures{extra_note}"
        ),
        command: format!(
            "callmood train-text --goemotions {}{} --out {}",
            a.goemotions.display(),
            a.asr_train.as_ref().map_or(String::new(), |p| format!(
                " --asr-train {} --asr-train-repeat {}",
                p.display(),
                a.asr_train_repeat
            )),
            a.out.display()
        ),
        label_mapping: format!(
            "{GOEMOTIONS_MAPPING} Left out: train {} mixed, {} surprise only; dev {} mixed, {} \
             surprise only.",
            train_stats.mixed, train_stats.surprise_only, dev_stats.mixed, dev_stats.surprise_only
        ),
        lexicon: "models/text: vader_lexicon.txt, negations.txt, boosters.tsv (VADER 3.3.2, MIT), \
                  cues.tsv (hand-written)"
            .into(),
        ..Default::default()
    };
    let cfg = SparseFitConfig {
        bits: a.bits,
        l2: a.l2,
        epochs: a.epochs,
        learning_rate: a.learning_rate,
        seed: TEXT_SEED,
    };
    let model = text_train::train(&lexicon, &train, &dev, &cfg, provenance);
    let json = serde_json::to_string_pretty(&model)?;
    std::fs::write(&a.out, json + "\n")
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!("callmood: wrote {}", a.out.display());
    print_dev(&model.dev)
}

fn print_dev(d: &TextDevFigures) -> anyhow::Result<()> {
    print_eval(&d.written, "GoEmotions dev as written", EvalFormat::Text)?;
    print_eval(&d.asr, "GoEmotions dev ASR-style", EvalFormat::Text)?;
    println!(
        "frustration ROC AUC (anger vs rest, all dev rows): as written {:.3}, ASR-style {:.3}",
        d.frustration_auc, d.frustration_auc_asr
    );
    Ok(())
}

/// Measures a model on labelled sentences or a GoEmotions split.
pub fn eval_text(a: EvalTextArgs) -> anyhow::Result<()> {
    let lexicon = TextLexicon::load(&a.lexicon)?;
    let model = TextModel::load(&a.model)?;
    for p in &a.ratings {
        let rows = text_train::read_ratings(p)?;
        let (mut neg_f, mut neg_share, mut mean) = (Vec::new(), Vec::new(), Vec::new());
        for (text, m) in &rows {
            let s = model.score(&lexicon, text);
            neg_f.push(-f64::from(s.frustration));
            // angry + sad + fearful
            neg_share.push(-f64::from(s.probs[2] + s.probs[3] + s.probs[4]));
            mean.push(*m);
        }
        println!(
            "{}: {} rated texts, Spearman ρ vs mean rating (valence, not frustration): \
             -frustration {:.3}, -(angry+sad+fearful) {:.3}",
            p.display(),
            rows.len(),
            text_train::spearman(&neg_f, &mean),
            text_train::spearman(&neg_share, &mean)
        );
    }
    match (&a.sentences, &a.goemotions) {
        (Some(p), _) if a.per_line => {
            let mut out = std::io::stdout().lock();
            for r in text_train::read_sentences(p)? {
                let s = model.score(&lexicon, &r.text);
                let line = serde_json::json!({
                    "text": r.text,
                    "class": crate::emotion::CLASSES[r.class],
                    "probs": s.probs,
                    "frustration": s.frustration,
                });
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
        (Some(p), _) => {
            let rows = text_train::read_sentences(p)?;
            let name = p.display().to_string();
            let eval = text_train::evaluate(&model, &lexicon, &rows);
            print_eval(&eval, &format!("{name} as written"), a.format)?;
            let asr: Vec<LabelledText> = rows
                .iter()
                .map(|r| LabelledText {
                    text: text_train::asr_style(&r.text),
                    class: r.class,
                })
                .collect();
            let eval = text_train::evaluate(&model, &lexicon, &asr);
            print_eval(&eval, &format!("{name} ASR-style"), a.format)
        }
        (None, Some(p)) => {
            let dir = p.parent().unwrap_or(std::path::Path::new("."));
            let split = p
                .file_name()
                .and_then(|s| s.to_str())
                .context("GoEmotions split path has no file name")?;
            let rows = text_train::read_goemotions_rows(dir, split)?.0;
            let d = text_train::dev_figures(&model, &lexicon, &rows);
            if a.format == EvalFormat::Json {
                println!("{}", serde_json::to_string(&d)?);
                return Ok(());
            }
            print_dev(&d)
        }
        (None, None) => anyhow::bail!("give --sentences or --goemotions"),
    }
}

fn print_eval(e: &TextEval, name: &str, format: EvalFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == EvalFormat::Json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            set: &'a str,
            classes: [&'static str; 5],
            #[serde(flatten)]
            eval: &'a TextEval,
        }
        let r = Report {
            set: name,
            classes: CLASSES,
            eval: e,
        };
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{name}: {} rows, UAR {:.3}, ECE {:.3}, NLL {:.3}, no lexicon hit in {:.1}%",
        e.rows,
        e.uar,
        e.ece,
        e.nll,
        100.0 * e.no_evidence
    )?;
    write!(out, "recall:")?;
    for (c, r) in CLASSES.iter().zip(&e.recalls) {
        match r {
            Some(r) => write!(out, " {c} {r:.3}")?,
            None => write!(out, " {c} -")?,
        }
    }
    writeln!(out, "\nconfusion (rows true, columns predicted):")?;
    write!(out, "{:>9}", "")?;
    for c in CLASSES {
        write!(out, "{c:>9}")?;
    }
    writeln!(out)?;
    for (c, row) in CLASSES.iter().zip(&e.confusion) {
        write!(out, "{c:>9}")?;
        for v in row {
            write!(out, "{v:>9}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy GoEmotions directory (Ekman labels) and a transcripts file beside it.
    fn toy(dir: &std::path::Path) -> PathBuf {
        let go = dir.join("go");
        std::fs::create_dir(&go).unwrap();
        std::fs::write(
            go.join("labels.txt"),
            "anger\ndisgust\nfear\njoy\nneutral\nsadness\nsurprise\n",
        )
        .unwrap();
        let rows = "all fine thanks\t4\ta\nlovely wonderful\t3\tb\nfurious outrageous\t0\tc\n\
                    grief heartbroken\t5\td\nscared terrified\t2\te\n";
        std::fs::write(go.join("train.tsv"), rows.repeat(8)).unwrap();
        std::fs::write(go.join("dev.tsv"), rows).unwrap();
        let asr = dir.join("asr.tsv");
        std::fs::write(
            &asr,
            "Furious. Outrageous!\t0\tasr-1\nAll fine, thanks.\t4\tasr-2\n",
        )
        .unwrap();
        go
    }

    fn args(go: PathBuf, out: PathBuf, asr: Option<PathBuf>, repeat: usize) -> TrainTextArgs {
        TrainTextArgs {
            goemotions: go,
            out,
            lexicon: PathBuf::from(DEFAULT_LEXICON_DIR),
            l2: TEXT_L2,
            epochs: 2,
            learning_rate: TEXT_LEARNING_RATE,
            bits: 10,
            asr_train: asr,
            asr_train_repeat: repeat,
        }
    }

    #[test]
    fn transcripts_join_the_training_rows_and_the_provenance_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let go = toy(dir.path());
        let (asr, out) = (dir.path().join("asr.tsv"), dir.path().join("m.json"));
        train_text(args(go.clone(), out.clone(), Some(asr.clone()), 3)).unwrap();
        let m: TextModel = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(
            m.provenance.corpus.ends_with(&format!(
                "plus 2 rows of {} (2 in the five classes), each 3 times",
                asr.display()
            )),
            "{}",
            m.provenance.corpus
        );
        assert!(m.provenance.command.contains("--asr-train-repeat 3"));

        let e = train_text(args(go.clone(), out.clone(), Some(asr), 0)).unwrap_err();
        assert_eq!(e.to_string(), "--asr-train-repeat must be at least 1");
        // A label id labels.txt does not have names the file and the line.
        let bad = dir.path().join("bad.tsv");
        std::fs::write(&bad, "hello\t9\tx\n").unwrap();
        let e = train_text(args(go, out, Some(bad.clone()), 1)).unwrap_err();
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
    }
}
