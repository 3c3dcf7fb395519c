//! `callmood audit`: the voice model's fairness audit over labelled corpora
//! ([`crate::train::audit`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::core::dsp::DspPlan;
use crate::emotion::voice::DEFAULT_VOICE_MODEL;
use crate::train::voice::TrainConfig;

/// How the audit is written.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFormat {
    /// Readable lines, the verdicts first.
    Text,
    /// One JSON object.
    Json,
    /// One self-contained HTML page.
    Html,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Corpus directory with manifest.csv (file,speaker,gender,emotion; optional `age` and
    /// `accent` columns give those groups). Repeat to audit several; their speakers are
    /// then named `DIR-NAME/speaker` and each corpus is a group.
    #[arg(long, required = true)]
    pub corpus: Vec<PathBuf>,
    /// Voice emotion model.
    #[arg(long, env = "CALLMOOD_EMOTION_MODEL", default_value = DEFAULT_VOICE_MODEL)]
    pub model: PathBuf,
    /// Hear the clips through the simulated phone line (8 kHz μ-law, band-limited, noise).
    #[arg(long)]
    pub telephony: bool,
    /// A speaker's age where the manifest has no `age` column, as SPEAKER=AGE (the speaker
    /// id as in the manifest; repeatable), e.g. `--age OAF=64 --age YAF=26` for TESS,
    /// whose README gives them.
    #[arg(long, value_name = "SPEAKER=AGE")]
    pub age: Vec<String>,
    /// Seed of the running protocol's clip order (and of the line noise), as `eval`.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    /// Write the report (in --format) to this file; stdout then gets the readable text.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub(super) fn audit(a: AuditArgs) -> anyhow::Result<()> {
    use crate::train::{audit, dataset};
    let model = Arc::new(crate::emotion::voice::VoiceModel::load(&a.model)?);
    let corpus = super::train::read_training_labels(&a.corpus, &[])?;
    let several = a.corpus.len() > 1;
    let mut attrs = audit::SpeakerAttributes::new();
    for dir in &a.corpus {
        let name = super::train::corpus_name(dir);
        let prefix = if several {
            format!("{name}/")
        } else {
            String::new()
        };
        for (speaker, mut v) in audit::read_speaker_attributes(dir, &prefix)? {
            v.insert("corpus".into(), name.clone());
            attrs.insert(speaker, v);
        }
    }
    audit::apply_ages(&mut attrs, &a.age).map_err(anyhow::Error::msg)?;
    let loaded = super::train::load_audio(&corpus);
    let condition = if a.telephony {
        dataset::Condition::Telephony
    } else {
        dataset::Condition::Clean
    };
    let p = dataset::predict(
        &DspPlan::new(),
        &corpus,
        &loaded,
        &model,
        condition,
        a.seed,
        false,
    );
    let corpora = a.corpus.iter().map(|d| d.display().to_string()).collect();
    let meta = (
        condition.name().to_string(),
        corpora,
        a.model.display().to_string(),
    );
    let r = audit::audit(&p.running, &p.cold, &attrs, meta);
    let body = match a.format {
        AuditFormat::Text => audit::render_text(&r),
        AuditFormat::Json => serde_json::to_string(&r)? + "\n",
        AuditFormat::Html => audit::render_html(&r),
    };
    let mut out = std::io::stdout().lock();
    match &a.out {
        Some(path) => {
            std::fs::write(path, body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            // The readable lines on stdout as well, unless that is what the file holds.
            if a.format != AuditFormat::Text {
                out.write_all(audit::render_text(&r).as_bytes())?;
            }
        }
        None => out.write_all(body.as_bytes())?,
    }
    Ok(())
}
