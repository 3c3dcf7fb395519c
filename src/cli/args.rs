//! Argument groups several subcommands share: the recogniser, the emotion models, a
//! channel's role and a report's format.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::asr::{AsrConfig, AsrError, AsrPool};
use crate::emotion::voice::DEFAULT_VOICE_MODEL;
use crate::proto;
use crate::server;

/// How a report is printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Readable text.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct EmotionArgs {
    /// Voice emotion model (trained by `callmood train`).
    #[arg(long, env = "CALLMOOD_EMOTION_MODEL", default_value = DEFAULT_VOICE_MODEL)]
    pub emotion_model: PathBuf,
    /// Words model (trained by `callmood train-text`).
    #[arg(long, env = "CALLMOOD_TEXT_MODEL", default_value = crate::emotion::text::DEFAULT_TEXT_MODEL)]
    pub text_model: PathBuf,
    /// Directory of the words lexicon, negations, boosters and cues.
    #[arg(long, env = "CALLMOOD_LEXICON", default_value = crate::emotion::text::DEFAULT_LEXICON_DIR)]
    pub lexicon: PathBuf,
    /// Run without the emotion model: no `emotion` scores and no cues.
    #[arg(long)]
    pub no_emotion: bool,
    /// Score the voice alone, not the words.
    #[arg(long)]
    pub no_words: bool,
}

impl EmotionArgs {
    /// The model path, unless emotion is switched off.
    pub(super) fn path(&self) -> Option<PathBuf> {
        (!self.no_emotion).then(|| self.emotion_model.clone())
    }

    /// The words model and lexicon, unless switched off.
    pub(super) fn words_paths(&self) -> Option<(PathBuf, PathBuf)> {
        (!self.no_emotion && !self.no_words)
            .then(|| (self.text_model.clone(), self.lexicon.clone()))
    }

    /// Loads the words side, unless switched off.
    pub(super) fn load_words(&self) -> anyhow::Result<Option<Arc<crate::emotion::Words>>> {
        match self.words_paths() {
            None => Ok(None),
            Some((m, l)) => Ok(Some(Arc::new(
                crate::emotion::Words::load(&m, &l).map_err(|e| {
                    anyhow::anyhow!("{e} (use --no-words to score the voice alone)")
                })?,
            ))),
        }
    }

    /// Loads the model, unless emotion is switched off.
    pub(super) fn load(&self) -> anyhow::Result<Option<Arc<crate::emotion::voice::VoiceModel>>> {
        match self.path() {
            None => Ok(None),
            Some(p) => Ok(Some(Arc::new(
                crate::emotion::voice::VoiceModel::load(&p).map_err(|e| {
                    anyhow::anyhow!("{e} (train one with `callmood train`, or use --no-emotion)")
                })?,
            ))),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AsrArgs {
    /// GGML Whisper model file.
    #[arg(long, env = "CALLMOOD_MODEL", default_value = server::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Recogniser worker threads (each shares the one loaded model).
    #[arg(long, env = "CALLMOOD_WORKERS", default_value_t = AsrConfig::default().workers)]
    pub workers: usize,
    /// CPU threads each recogniser worker uses.
    #[arg(long, env = "CALLMOOD_THREADS", default_value_t = AsrConfig::default().threads_per_worker)]
    pub threads: usize,
    /// Utterances queued for the recogniser at most.
    #[arg(long, env = "CALLMOOD_QUEUE", default_value_t = AsrConfig::default().queue_capacity)]
    pub queue: usize,
    /// Seconds a live call's utterance may wait for the recogniser: one that waited longer
    /// is sent without words (counted in the summary's transcripts_dropped), so results
    /// stay timely when the recogniser is behind. Recordings always wait.
    #[arg(long, env = "CALLMOOD_MAX_QUEUE_WAIT", default_value_t = AsrConfig::default().max_queue_wait_s)]
    pub max_queue_wait: f32,
    /// Seconds of silence before each utterance packed into one Whisper window (0..=5).
    #[arg(long, env = "CALLMOOD_GAP_S", default_value_t = AsrConfig::default().gap_s)]
    pub gap_s: f32,
}

impl AsrArgs {
    /// The pool configuration these flags give, checked by [`AsrConfig::validate`]; its
    /// error names the flag (`--workers`), not the field (`workers`), with the value given.
    pub(super) fn config(&self) -> anyhow::Result<AsrConfig> {
        let cfg = AsrConfig {
            workers: self.workers,
            threads_per_worker: self.threads,
            queue_capacity: self.queue,
            max_queue_wait_s: self.max_queue_wait,
            gap_s: self.gap_s,
            ..AsrConfig::default()
        };
        match cfg.validate() {
            Ok(()) => Ok(cfg),
            Err(AsrError::InvalidConfig(m)) => bail!("{}", self.name_flag(&m)),
            Err(e) => Err(e.into()),
        }
    }

    /// `m`, a message of [`AsrConfig::validate`] that starts with a field's name, with the
    /// flag that sets the field in its place and the value given after it.
    fn name_flag(&self, m: &str) -> String {
        let flags = [
            ("workers", "--workers", self.workers.to_string()),
            ("threads_per_worker", "--threads", self.threads.to_string()),
            ("queue_capacity", "--queue", self.queue.to_string()),
            (
                "max_queue_wait_s",
                "--max-queue-wait",
                self.max_queue_wait.to_string(),
            ),
            ("gap_s", "--gap-s", self.gap_s.to_string()),
        ];
        for (field, flag, value) in flags {
            if let Some(rest) = m.strip_prefix(field).filter(|r| r.starts_with(' ')) {
                return format!("{flag}{rest}, got {value}");
            }
        }
        m.to_string()
    }

    /// The model path, or the one-line error that says how to get the model.
    pub(super) fn require_model(&self) -> anyhow::Result<&Path> {
        if !self.model.is_file() {
            bail!(
                "model file {} not found: run models/fetch.sh to fetch and convert it, or pass --model",
                self.model.display()
            );
        }
        Ok(&self.model)
    }

    /// The recogniser pool: the model loaded once, the workers started.
    pub(super) fn load(&self) -> anyhow::Result<AsrPool> {
        AsrPool::new(self.require_model()?, self.config()?)
            .map_err(|e| anyhow::anyhow!("cannot load the model {}: {e}", self.model.display()))
    }
}

/// Who speaks on a channel.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Caller,
    Agent,
}

impl RoleArg {
    /// The role on the wire.
    pub(super) fn proto(self) -> proto::Role {
        match self {
            RoleArg::Caller => proto::Role::Caller,
            RoleArg::Agent => proto::Role::Agent,
        }
    }
}

/// Reads and decodes a recording (WAV, FLAC, MP3, Ogg Vorbis or Opus); errors name the file.
pub(super) fn read_recording(path: &Path) -> anyhow::Result<crate::core::codec::wav::WavAudio> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::core::codec::decode_audio_file(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Asr {
        #[command(flatten)]
        asr: AsrArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<AsrConfig> {
        Asr::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?
            .asr
            .config()
    }

    #[test]
    fn asr_flags_make_the_pool_config() {
        assert_eq!(config(&[]).unwrap(), AsrConfig::default());
        let c = config(&[
            "--workers",
            "3",
            "--threads",
            "1",
            "--queue",
            "5",
            "--gap-s",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            (c.workers, c.threads_per_worker, c.queue_capacity, c.gap_s),
            (3, 1, 5, 0.5)
        );
    }

    #[test]
    fn a_bad_asr_flag_is_named_with_its_value() {
        for (args, want) in [
            (&["--workers", "0"][..], "--workers must be ≥ 1, got 0"),
            (&["--threads", "0"], "--threads must be ≥ 1, got 0"),
            (&["--queue", "0"], "--queue must be ≥ 1, got 0"),
            (
                &["--max-queue-wait=-1"],
                "--max-queue-wait must be > 0, got -1",
            ),
            (
                &["--max-queue-wait", "inf"],
                "--max-queue-wait must be > 0, got inf",
            ),
            (&["--gap-s", "9"], "--gap-s must be in 0..=5, got 9"),
        ] {
            let e = config(args).unwrap_err().to_string();
            assert_eq!(e, want, "{args:?}");
        }
    }
}
