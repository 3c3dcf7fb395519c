//! One Whisper model in memory, one decoder state per worker thread.
//!
//! whisper.cpp splits a model into a read-only context (the weights, ~78 MB for tiny.en f16)
//! and a mutable state (mel, KV caches, ~tens of MB). [`WhisperModel`] holds the context and is
//! shared by `Arc`; each worker owns a [`Transcriber`] with its own state, so workers run in
//! parallel without locks or model copies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters, WhisperState,
};

use super::words::{tokens_to_words, TokenPiece};
use super::{AsrError, Word};

/// Threads one transcriber gives whisper.cpp unless told otherwise: the 2 cores
/// of the reference machine. On that machine, idle, `analyze` over 15 clips took
/// 28.6 s with 2 threads against 45.2 s with 1; but ggml's threads spin while
/// waiting for each other, so on cores busy with other work 2 threads were 2.5×
/// slower than 1 (tests/asr_eval.rs): pass `--threads 1` on a crowded machine.
pub const DEFAULT_THREADS_PER_TRANSCRIBER: usize = 2;
/// whisper.cpp returns nothing for less than 1 s of audio; shorter input is padded with
/// silence up to this many samples (1.1 s at 16 kHz).
const MIN_SAMPLES: usize = 17_600;
/// Samples per ms at [`crate::SAMPLE_RATE`].
const SAMPLES_PER_MS: usize = crate::SAMPLE_RATE as usize / 1000;
/// Working memory for DTW token alignment, bytes (whisper-rs' default).
const DTW_MEM_BYTES: usize = 128 << 20;

/// One Whisper segment: words Whisper decoded between two of its timestamp tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, ms from the start of the audio (Whisper's own timestamp token).
    pub start_ms: u32,
    /// End, ms (the next segment's start, often the onset of the next speech).
    pub end_ms: u32,
    /// The words, special tokens and annotations removed.
    pub words: Vec<Word>,
}

/// A loaded GGML Whisper model (the read-only part), shared by all transcribers.
pub struct WhisperModel {
    ctx: WhisperContext,
    path: PathBuf,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WhisperModel {
    /// Loads a whisper.cpp GGML model (as written by [`super::convert`]). CPU only.
    pub fn load(path: &Path) -> Result<Arc<Self>, AsrError> {
        Self::load_with(path, true)
    }

    /// Like [`WhisperModel::load`]; `dtw` false leaves out the DTW alignment, so word times
    /// are whisper.cpp's interpolated token times. Only for measuring what DTW costs
    /// ([`Transcriber::profile`]): packed windows are split by DTW times.
    pub fn load_with(path: &Path, dtw: bool) -> Result<Arc<Self>, AsrError> {
        static QUIET: Once = Once::new();
        // whisper.cpp logs every load and decode to stderr; route it into the void
        // (whisper-rs is built without a log backend).
        QUIET.call_once(whisper_rs::install_logging_hooks);

        if !path.is_file() {
            return Err(AsrError::Model {
                path: path.to_path_buf(),
                reason: "file not found (run models/fetch.sh to build it)".into(),
            });
        }
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        // Word start times come from DTW over tiny.en's alignment heads (the heads listed in
        // the CTranslate2 config.json): whisper.cpp's default token times are interpolated
        // inside a segment and drift by up to a second, too much to split packed windows.
        if dtw {
            params.dtw_parameters(DtwParameters {
                mode: DtwMode::ModelPreset {
                    model_preset: DtwModelPreset::TinyEn,
                },
                dtw_mem_size: DTW_MEM_BYTES,
            });
        }
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| AsrError::Model {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if ctx.is_multilingual() {
            // Prompts and special-token handling below assume an English-only model.
            return Err(AsrError::Model {
                path: path.to_path_buf(),
                reason: "multilingual models are not supported yet; use an `.en` model".into(),
            });
        }
        Ok(Arc::new(WhisperModel {
            ctx,
            path: path.to_path_buf(),
        }))
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A new decoder state (KV caches, buffers, random generator) for `model`.
fn new_state(model: &WhisperModel) -> Result<WhisperState, AsrError> {
    model.ctx.create_state().map_err(|e| AsrError::Model {
        path: model.path.clone(),
        reason: format!("cannot create decoder state: {e}"),
    })
}

/// Transcribes audio with a model; owns the mutable decoder state. One per worker thread.
pub struct Transcriber {
    model: Arc<WhisperModel>,
    state: WhisperState,
    threads: usize,
}

impl Transcriber {
    /// A transcriber that runs whisper.cpp on `threads` threads (at least 1).
    pub fn new(model: Arc<WhisperModel>, threads: usize) -> Result<Self, AsrError> {
        if threads == 0 {
            return Err(AsrError::InvalidConfig(
                "threads per transcriber must be ≥ 1".into(),
            ));
        }
        let state = new_state(&model)?;
        Ok(Transcriber {
            model,
            state,
            threads,
        })
    }

    /// The model this transcriber uses.
    pub fn model(&self) -> &Arc<WhisperModel> {
        &self.model
    }

    /// Transcribes 16 kHz mono audio (any length; whisper.cpp walks 30 s windows) with greedy
    /// English decoding. Word times are ms from the start of `audio_16k`; non-speech
    /// annotations and special tokens are removed.
    pub fn transcribe(&mut self, audio_16k: &[f32]) -> Result<Vec<Word>, AsrError> {
        let segments = self.transcribe_segments(audio_16k)?;
        Ok(segments.into_iter().flat_map(|s| s.words).collect())
    }

    /// Like [`Transcriber::transcribe`], keeping Whisper's segments.
    pub fn transcribe_segments(&mut self, audio_16k: &[f32]) -> Result<Vec<Segment>, AsrError> {
        if audio_16k.is_empty() {
            return Ok(Vec::new());
        }
        let audio_ms = (audio_16k.len() / SAMPLES_PER_MS) as u32;
        let input = padded(audio_16k);
        let params = self.params();

        // A fresh state for every run, so the same audio gives the same words: whisper.cpp
        // seeds the random generator its temperature fallback samples with once per state
        // (`decoders[0].rng`), so on a reused state a window's words would depend on every
        // window decoded before it. The fallback itself stays: greedy-only decoding cost
        // 1.75 WER points at 16 kHz (docs/measurements.md, "Deterministic decoding").
        self.state = new_state(&self.model)?;
        self.state
            .full(params, &input)
            .map_err(|e| AsrError::Whisper(e.to_string()))?;
        Ok(self.segments(audio_ms))
    }

    /// Where the time of one run over `audio_16k` (at most one 30 s window) goes, each
    /// part timed on its own fresh state, one after the other: the log-mel spectrogram
    /// and one encoder pass alone; the run as [`Transcriber::transcribe`] makes it (DTW
    /// word times, temperature fallback); the same with greedy decoding only; and the same
    /// on `no_dtw` (the same weights loaded without DTW, [`WhisperModel::load_with`]).
    /// The differences are the decoder's share, DTW's and the fallback's.
    pub fn profile(
        &mut self,
        audio_16k: &[f32],
        no_dtw: &Arc<WhisperModel>,
    ) -> Result<RunProfile, AsrError> {
        let input = padded(audio_16k);
        let whisper = |e: whisper_rs::WhisperError| AsrError::Whisper(e.to_string());
        let timed = |f: &mut dyn FnMut() -> Result<(), AsrError>| {
            let t0 = std::time::Instant::now();
            f().map(|()| t0.elapsed().as_secs_f64())
        };
        let threads = self.threads;
        let mut state = new_state(&self.model)?;
        let encode_s = timed(&mut || {
            state.pcm_to_mel(&input, threads).map_err(whisper)?;
            state.encode(0, threads).map_err(whisper)
        })?;
        let run = |model: &WhisperModel, greedy: bool| -> Result<f64, AsrError> {
            let mut params = self.params();
            if greedy {
                params.set_temperature_inc(0.0);
            }
            let mut state = new_state(model)?;
            timed(&mut || state.full(params.clone(), &input).map_err(whisper))
        };
        let full_s = run(&self.model, false)?;
        let greedy_s = run(&self.model, true)?;
        let no_dtw_s = run(no_dtw, false)?;
        Ok(RunProfile {
            encode_s,
            full_s,
            greedy_s,
            no_dtw_s,
        })
    }

    /// The decoding parameters of every run.
    fn params(&self) -> FullParams<'static, 'static> {
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(self.threads).unwrap_or(i32::MAX));
        params.set_language(Some("en"));
        params.set_translate(false);
        // Each call is independent: no prompt carried over from earlier audio.
        params.set_no_context(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_token_timestamps(true);
        params.set_suppress_blank(true);
        // Suppress non-speech tokens (♪, brackets and the like) at decode time; what slips
        // through is filtered in `words`.
        params.set_suppress_nst(true);
        params
    }

    /// The segments of the last run, times clamped to `audio_ms`.
    fn segments(&self, audio_ms: u32) -> Vec<Segment> {
        let eot = self.model.ctx.token_eot();
        // Whisper times are in centiseconds from the start of the input.
        let to_ms = |cs: i64| (cs.max(0) as u64 * 10).min(audio_ms as u64) as u32;
        let mut segments = Vec::new();
        for seg in self.state.as_iter() {
            let mut pieces = Vec::new();
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else {
                    continue;
                };
                // Ids from end-of-text up are special: [_EOT_], [_SOT_], [_BEG_], [_TT_n]...
                if tok.token_id() >= eot {
                    continue;
                }
                let Ok(bytes) = tok.to_bytes() else {
                    continue;
                };
                let data = tok.token_data();
                // Start from DTW where it succeeded (t_dtw < 0 otherwise); the interpolated
                // t0..t1 still gives a duration estimate.
                let start = if data.t_dtw >= 0 { data.t_dtw } else { data.t0 };
                let duration = (data.t1 - data.t0).max(0);
                pieces.push(TokenPiece {
                    bytes: bytes.to_vec(),
                    start_ms: to_ms(start),
                    end_ms: to_ms(start + duration),
                    p: data.p,
                });
            }
            let words = tokens_to_words(&pieces);
            if !words.is_empty() {
                segments.push(Segment {
                    start_ms: to_ms(seg.start_timestamp()),
                    end_ms: to_ms(seg.end_timestamp()),
                    words,
                });
            }
        }
        segments
    }
}

/// `audio` padded with silence to the shortest input whisper.cpp answers
/// ([`MIN_SAMPLES`]), or borrowed as it is.
fn padded(audio: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    if audio.len() < MIN_SAMPLES {
        let mut p = audio.to_vec();
        p.resize(MIN_SAMPLES, 0.0);
        std::borrow::Cow::Owned(p)
    } else {
        std::borrow::Cow::Borrowed(audio)
    }
}

/// Seconds one run spent, by part ([`Transcriber::profile`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunProfile {
    /// Log-mel spectrogram and one encoder pass over the 30 s window.
    pub encode_s: f64,
    /// The whole run as the service makes it: DTW word times, temperature fallback.
    pub full_s: f64,
    /// The same with greedy decoding only (no temperature fallback).
    pub greedy_s: f64,
    /// The same as `full_s` on the model loaded without DTW.
    pub no_dtw_s: f64,
}
