//! One Whisper model in memory, one decoder state per worker thread.
//!
//! whisper.cpp splits a model into a read-only context (the weights, ~78 MB for tiny.en f16)
//! and a mutable state (mel, KV caches, ~tens of MB). [`WhisperModel`] holds the context and is
//! shared by `Arc`; each worker owns a [`Transcriber`] with its own state, so workers run in
//! parallel without locks or model copies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

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
    /// Token ids [`Transcriber::transcribe_pieces`] never decodes: whisper.cpp's
    /// non-speech list (with and without a leading space), " -" and " '".
    suppressed: OnceLock<Vec<usize>>,
    /// The token " ", kept from opening a piece.
    space: OnceLock<Option<usize>>,
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
            suppressed: OnceLock::new(),
            space: OnceLock::new(),
        }))
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text tokens' ids and bytes (every id below end-of-text).
    fn text_tokens(&self) -> impl Iterator<Item = (usize, &[u8])> {
        (0..self.ctx.token_eot())
            .filter_map(|t| Some((t as usize, self.ctx.token_to_bytes(t).ok()?)))
    }

    fn suppressed(&self) -> &[usize] {
        self.suppressed.get_or_init(|| {
            const NON_SPEECH: &[&str] = &[
                "\"",
                "#",
                "(",
                ")",
                "*",
                "+",
                "/",
                ":",
                ";",
                "<",
                "=",
                ">",
                "@",
                "[",
                "\\",
                "]",
                "^",
                "_",
                "`",
                "{",
                "|",
                "}",
                "~",
                "「",
                "」",
                "『",
                "』",
                "<<",
                ">>",
                "<<<",
                ">>>",
                "--",
                "---",
                "-(",
                "-[",
                "('",
                "(\"",
                "((",
                "))",
                "(((",
                ")))",
                "[[",
                "]]",
                "{{",
                "}}",
                "♪♪",
                "♪♪♪",
                "♩",
                "♪",
                "♫",
                "♬",
                "♭",
                "♮",
                "♯",
            ];
            self.text_tokens()
                .filter(|(_, b)| {
                    let b = b.strip_prefix(b" ").unwrap_or(b);
                    NON_SPEECH.iter().any(|n| n.as_bytes() == b)
                })
                .map(|(t, _)| t)
                .chain(
                    self.text_tokens()
                        .filter(|(_, b)| *b == b" -" || *b == b" '")
                        .map(|(t, _)| t),
                )
                .collect()
        })
    }

    fn space_token(&self) -> Option<usize> {
        *self
            .space
            .get_or_init(|| self.text_tokens().find(|(_, b)| *b == b" ").map(|(t, _)| t))
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

    /// Each piece of a packed window decoded on its own over one encoder pass: the window's
    /// log-mel and encoder run once, then for every piece (`spans`, sample ranges of
    /// `audio_16k`) the decoder starts afresh, forced to begin at the piece's first
    /// timestamp, and stops at end-of-text or at a timestamp past the piece (half the gap
    /// after it). No piece's words are another's decoder context. Greedy, without
    /// temperature fallback; Whisper's timestamp rules (pairs, never decreasing, a
    /// timestamp when they are likelier than any word). Word times are interpolated inside
    /// each segment by the tokens' lengths, ms from the start of their piece. A word whose
    /// interpolated start lies past its piece's end is dropped and counted.
    pub fn transcribe_pieces(
        &mut self,
        audio_16k: &[f32],
        spans: &[std::ops::Range<usize>],
        gap_samples: usize,
    ) -> Result<Vec<PieceWords>, AsrError> {
        let whisper = |e: whisper_rs::WhisperError| AsrError::Whisper(e.to_string());
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let input = padded(audio_16k);
        let threads = self.threads;
        self.state = new_state(&self.model)?;
        self.state.pcm_to_mel(&input, threads).map_err(whisper)?;
        self.state.encode(0, threads).map_err(whisper)?;
        let ctx = &self.model.ctx;
        let (eot, sot, beg) = (ctx.token_eot(), ctx.token_sot(), ctx.token_beg());
        let n_vocab = usize::try_from(ctx.n_vocab()).unwrap_or(0);
        let suppressed = self.model.suppressed();
        // 20 ms per timestamp step; the last is 30 s.
        let ts_of = |sample: usize| (sample / (SAMPLES_PER_MS * 20)) as i32;
        let half_gap = gap_samples / 2;
        let mut raw = Vec::with_capacity(spans.len());
        for span in spans {
            let first_ts = ts_of(span.start.saturating_sub(half_gap)).min(1500);
            let last_ts = ts_of(span.end + half_gap).min(1500);
            let end_ts = ts_of(span.end);
            let max_tokens = 16 + 8 * (span.len() / crate::SAMPLE_RATE as usize + 1);
            let mut seq = vec![beg + first_ts];
            // One token per call: whisper.cpp keeps the logits of a batch's last token in
            // its last row, and whisper-rs reads the first.
            self.state.decode(&[sot], 0, threads).map_err(whisper)?;
            self.state
                .decode(&[beg + first_ts], 1, threads)
                .map_err(whisper)?;
            // (token, p, segment index); segments as (start ts, end ts).
            let mut texts: Vec<(i32, f32, usize, i32)> = Vec::new();
            let mut segments: Vec<(i32, Option<i32>)> = vec![(first_ts, None)];
            let mut logprob_sum = 0.0f64;
            let mut ran_past = false;
            for n_past in 2..2 + max_tokens {
                let mut logits = self.state.get_logits().map_err(whisper)?.to_vec();
                logits.truncate(n_vocab);
                // Where the decoder is: its likeliest timestamp before any rule.
                let here = logits[beg as usize..]
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .map_or(0, |(i, _)| i as i32);
                for &t in suppressed.iter() {
                    logits[t] = f32::NEG_INFINITY;
                }
                for t in (eot + 1)..beg {
                    logits[t as usize] = f32::NEG_INFINITY;
                }
                if texts.is_empty() && seq.len() == 1 {
                    // suppress_blank: no empty start.
                    logits[eot as usize] = f32::NEG_INFINITY;
                    if let Some(space) = self.model.space_token() {
                        logits[space] = f32::NEG_INFINITY;
                    }
                }
                let last_is_ts = seq.last().is_some_and(|&t| t >= beg);
                let pen_is_ts = seq.len() < 2 || seq[seq.len() - 2] >= beg;
                let b = beg as usize;
                if last_is_ts {
                    if pen_is_ts {
                        logits[b..].fill(f32::NEG_INFINITY);
                    } else {
                        logits[..eot as usize].fill(f32::NEG_INFINITY);
                    }
                }
                if let Some(&last) = seq.iter().rev().find(|&&t| t >= beg) {
                    let min = if last_is_ts && !pen_is_ts {
                        last
                    } else {
                        last + 1
                    };
                    let min = (min - beg) as usize;
                    logits[b..(b + min).min(n_vocab)].fill(f32::NEG_INFINITY);
                }
                let logprobs = log_softmax(&logits);
                let ts_lp = log_sum_exp(&logprobs[b..]);
                let text_max = logprobs[..b]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                let pick_ts = ts_lp > text_max;
                let range = if pick_ts { b..n_vocab } else { 0..b };
                let Some((tok, lp)) = range
                    .map(|i| (i, logprobs[i]))
                    .filter(|(_, lp)| lp.is_finite())
                    .max_by(|x, y| x.1.total_cmp(&y.1))
                else {
                    break;
                };
                let tok = tok as i32;
                if tok == eot {
                    break;
                }
                logprob_sum += f64::from(lp);
                if tok >= beg {
                    let t = tok - beg;
                    if last_is_ts && !pen_is_ts {
                        // A new segment starting past the piece: the next piece's speech.
                        if t >= end_ts {
                            break;
                        }
                        segments.push((t, None));
                    } else {
                        if let Some(s) = segments.last_mut() {
                            s.1 = Some(t);
                        }
                        if t > last_ts {
                            ran_past = true;
                            break;
                        }
                    }
                    seq.push(tok);
                } else {
                    // Two words' worth of the decoder placing itself past the piece: the
                    // next piece's speech, decoded on without a timestamp between.
                    if here > last_ts && texts.last().is_some_and(|t| t.3 > last_ts) {
                        texts.pop();
                        ran_past = true;
                        break;
                    }
                    texts.push((tok, lp.exp(), segments.len() - 1, here));
                    seq.push(tok);
                }
                self.state
                    .decode(&[tok], n_past, threads)
                    .map_err(whisper)?;
            }
            let n_tokens = seq.len().saturating_sub(1);
            raw.push((
                texts,
                segments,
                ran_past,
                if n_tokens == 0 {
                    0.0
                } else {
                    (logprob_sum / n_tokens as f64) as f32
                },
            ));
        }
        // What a piece decoded on into the next piece (or back from the previous one) is
        // that piece's own opening (closing) words: cut it where they meet.
        let mut cut = vec![false; raw.len()];
        for k in 0..raw.len() {
            let words_k = self.norm_words(&raw[k].0);
            if let Some(next) = raw.get(k + 1) {
                let words_n = self.norm_words(&next.0);
                // All of this piece's words again in the next is the next reading back
                // into this one (cut from it below), not this one running on.
                if let Some(l) =
                    overlap(&words_k, &words_n, raw[k].2).filter(|&l| l < words_k.len())
                {
                    raw[k].0.truncate(words_k[words_k.len() - l].1);
                    cut[k] = true;
                }
            }
            if k > 0 {
                let words_k = self.norm_words(&raw[k].0);
                let words_p = self.norm_words(&raw[k - 1].0);
                if let Some(l) = overlap(&words_p, &words_k, false) {
                    let to = words_k.get(l).map_or(raw[k].0.len(), |w| w.1);
                    raw[k].0.drain(..to);
                    cut[k] = true;
                }
            }
        }
        Ok(raw
            .into_iter()
            .zip(spans.iter().zip(cut))
            .map(|((texts, segments, _, mean_logprob), (span, cut))| {
                let (words, dropped) = self.piece_words(&texts, &segments, span, ts_of(span.end));
                PieceWords {
                    words,
                    dropped: dropped + usize::from(cut),
                    mean_logprob,
                }
            })
            .collect())
    }

    /// A piece's words, lower case, letters and digits only (empty ones left out), each
    /// with the index of its first token in `texts`.
    fn norm_words(&self, texts: &[(i32, f32, usize, i32)]) -> Vec<(String, usize)> {
        let mut words: Vec<(String, usize)> = Vec::new();
        for (i, &(tok, ..)) in texts.iter().enumerate() {
            let bytes = self.model.ctx.token_to_bytes(tok).unwrap_or(b"");
            let text = String::from_utf8_lossy(bytes);
            let norm: String = text
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            match words.last_mut() {
                Some(w) if !text.starts_with(' ') => w.0.push_str(&norm),
                _ => words.push((norm, i)),
            }
        }
        words.retain(|w| !w.0.is_empty());
        words
    }

    /// The words of one piece ([`Transcriber::transcribe_pieces`]): text tokens with times
    /// interpolated inside their segment by byte length, ms from the piece's start; words
    /// starting past the piece's end dropped (their count second).
    fn piece_words(
        &self,
        texts: &[(i32, f32, usize, i32)],
        segments: &[(i32, Option<i32>)],
        span: &std::ops::Range<usize>,
        end_ts: i32,
    ) -> (Vec<Word>, usize) {
        let ctx = &self.model.ctx;
        let start_ms = (span.start / SAMPLES_PER_MS) as f64;
        let len_ms = (span.len() / SAMPLES_PER_MS) as f64;
        let mut pieces = Vec::with_capacity(texts.len());
        for (si, &(s0, s1)) in segments.iter().enumerate() {
            let toks: Vec<(Vec<u8>, f32)> = texts
                .iter()
                .filter(|t| t.2 == si)
                .filter_map(|&(tok, p, _, _)| ctx.token_to_bytes(tok).ok().map(|b| (b.to_vec(), p)))
                .collect();
            if toks.is_empty() {
                continue;
            }
            let t0 = f64::from(s0) * 20.0;
            let t1 = f64::from(s1.unwrap_or(end_ts).max(s0)) * 20.0;
            let total: usize = toks.iter().map(|t| t.0.len().max(1)).sum();
            let mut acc = 0usize;
            for (bytes, p) in toks {
                let a = t0 + (t1 - t0) * acc as f64 / total as f64;
                acc += bytes.len().max(1);
                let b = t0 + (t1 - t0) * acc as f64 / total as f64;
                pieces.push((bytes, a, b, p));
            }
        }
        let mut dropped = 0;
        let mut kept = Vec::with_capacity(pieces.len());
        for (bytes, a, b, p) in pieces {
            let rel = |t: f64| (t - start_ms).clamp(0.0, len_ms).round() as u32;
            kept.push((
                TokenPiece {
                    bytes,
                    start_ms: rel(a),
                    end_ms: rel(b),
                    p,
                },
                a - start_ms > len_ms,
            ));
        }
        // A word (its tokens from one that opens with a space to the next such) is dropped
        // when its first token starts past the piece.
        let starts: Vec<usize> = (0..kept.len())
            .filter(|&i| i == 0 || kept[i].0.bytes.first() == Some(&b' '))
            .collect();
        let mut tokens = Vec::with_capacity(kept.len());
        for (w, &start) in starts.iter().enumerate() {
            let end = starts.get(w + 1).copied().unwrap_or(kept.len());
            if kept[start].1 {
                dropped += 1;
            } else {
                tokens.extend(kept[start..end].iter().map(|(t, _)| t.clone()));
            }
        }
        (tokens_to_words(&tokens), dropped)
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

/// One piece's words from [`Transcriber::transcribe_pieces`].
#[derive(Debug, Clone, PartialEq)]
pub struct PieceWords {
    /// The words, ms from the start of the piece.
    pub words: Vec<Word>,
    /// Words dropped because they started past the piece's end.
    pub dropped: usize,
    /// Mean log-probability of the piece's decoded tokens (0 when none).
    pub mean_logprob: f32,
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&l| f64::from((l - max).exp()))
        .sum::<f64>();
    let log_sum = max + sum.ln() as f32;
    logits.iter().map(|&l| l - log_sum).collect()
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f32::NEG_INFINITY;
    }
    max + v.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

/// The longest run of words that ends `a` and opens `b`, in words: at least two, or one
/// when `one` (`a` was stopped running past its piece) or when it is all of `a` or `b`.
fn overlap(a: &[(String, usize)], b: &[(String, usize)], one: bool) -> Option<usize> {
    let max = a.len().min(b.len());
    (1..=max).rev().find(|&l| {
        let long_enough = l >= 2 || one || a.len() == 1 || b.len() == 1;
        long_enough
            && a[a.len() - l..]
                .iter()
                .zip(&b[..l])
                .all(|(x, y)| x.0 == y.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize)> {
        text.split(' ')
            .enumerate()
            .map(|(i, w)| (w.into(), i))
            .collect()
    }

    #[test]
    fn a_piece_running_on_meets_the_next_pieces_opening() {
        let a = words("we call them lifts we usually parked");
        let b = words("we usually parked our motorcycles");
        assert_eq!(overlap(&a, &b, false), Some(3));
        // One shared word counts only for a piece stopped running past its end, or where
        // it is all of one piece.
        let a = words("from ferris how");
        let b = words("how do i know");
        assert_eq!(overlap(&a, &b, false), None);
        assert_eq!(overlap(&a, &b, true), Some(1));
        assert_eq!(overlap(&words("one"), &words("one more"), false), Some(1));
        assert_eq!(overlap(&words("a b c"), &words("x y"), true), None);
        assert_eq!(overlap(&[], &words("x"), true), None);
    }

    #[test]
    fn log_softmax_sums_to_one_and_ignores_masked_logits() {
        let lp = log_softmax(&[1.0, 2.0, f32::NEG_INFINITY, 0.5]);
        let total: f32 = lp.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        assert_eq!(lp[2], f32::NEG_INFINITY);
        assert!((log_sum_exp(&lp) - 0.0).abs() < 1e-5);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
    }
}
