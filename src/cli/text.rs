//! The `train-text` and `eval-text` commands: file paths in, the model file and a report
//! out. The binary's edge, so errors are `anyhow`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::emotion::linear::FitConfig;
use crate::emotion::text::{TextEval, TextLexicon, TextModel, TextProvenance};
use crate::emotion::text::{DEFAULT_LEXICON_DIR, DEFAULT_TEXT_MODEL};
use crate::emotion::CLASSES;
use crate::train::text::{self as text_train, LabelledText, GOEMOTIONS_MAPPING};

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
    /// L2 penalty on the weights (see `linear::FitConfig`).
    #[arg(long, default_value_t = TEXT_L2)]
    pub l2: f32,
    /// Full-batch Adam steps.
    #[arg(long, default_value_t = TEXT_ITERATIONS)]
    pub iterations: usize,
}

/// L2 penalty of the shipped model: of 1e-2 (600 steps), 1e-3 and 1e-4 (1500 steps), the best
/// GoEmotions dev UAR (0.469, 0.484, 0.477).
pub const TEXT_L2: f32 = 1e-3;
/// Adam steps of the shipped model.
pub const TEXT_ITERATIONS: usize = 1500;

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
    /// The words model.
    #[arg(long, default_value = DEFAULT_TEXT_MODEL)]
    pub model: PathBuf,
    /// Directory of the lexicon files.
    #[arg(long, default_value = DEFAULT_LEXICON_DIR)]
    pub lexicon: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EvalFormat::Text)]
    pub format: EvalFormat,
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
    let (train, train_stats) = text_train::read_goemotions(&a.goemotions, "train.tsv")?;
    let (dev, dev_stats) = text_train::read_goemotions(&a.goemotions, "dev.tsv")?;
    let provenance = TextProvenance {
        corpus: "GoEmotions, Ekman grouping (Demszky et al. 2020; Apache-2.0): train.tsv to fit, \
                 dev.tsv for the temperature and the figures"
            .into(),
        command: format!(
            "callmood train-text --goemotions {} --out {}",
            a.goemotions.display(),
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
    let cfg = FitConfig {
        l2: a.l2,
        iterations: a.iterations,
        ..FitConfig::default()
    };
    let model = text_train::train(&lexicon, &train, &dev, &cfg, provenance);
    let json = serde_json::to_string_pretty(&model)?;
    std::fs::write(&a.out, json + "\n")
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!("callmood: wrote {}", a.out.display());
    print_eval(&model.dev, "GoEmotions dev", EvalFormat::Text)
}

/// Measures a model on labelled sentences or a GoEmotions split.
pub fn eval_text(a: EvalTextArgs) -> anyhow::Result<()> {
    let lexicon = TextLexicon::load(&a.lexicon)?;
    let model = TextModel::load(&a.model)?;
    let (rows, name): (Vec<LabelledText>, String) = match (&a.sentences, &a.goemotions) {
        (Some(p), _) => (text_train::read_sentences(p)?, p.display().to_string()),
        (None, Some(p)) => {
            let dir = p.parent().unwrap_or(std::path::Path::new("."));
            let split = p
                .file_name()
                .and_then(|s| s.to_str())
                .context("GoEmotions split path has no file name")?;
            (
                text_train::read_goemotions(dir, split)?.0,
                p.display().to_string(),
            )
        }
        (None, None) => anyhow::bail!("give --sentences or --goemotions"),
    };
    let eval = text_train::evaluate(&model, &lexicon, &rows);
    print_eval(&eval, &name, a.format)
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
        "{name}: {} rows, UAR {:.3}, ECE {:.3}, NLL {:.3}, no word evidence in {:.1}%",
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
