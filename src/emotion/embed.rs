//! Learned voice features: the first blocks of Whisper's audio encoder, pooled over an
//! utterance.
//!
//! Whisper's encoder was trained on 680 000 hours of speech to feed a recogniser, and its
//! lower blocks carry how something is said (timbre, effort, voice quality, tempo) as well
//! as what is said. callmood runs the log-mel front end, the two convolutions and the first
//! [`EMBED_BLOCKS`] transformer blocks of the same tiny.en model the recogniser loads
//! (`models/ggml-tiny.en.bin`), on the utterance's own audio (no padding to 30 s), and pools
//! each block's output over time into a mean and a standard deviation per dimension:
//! `EMBED_BLOCKS × 2 × 384 =` [`N_EMBED`] numbers per utterance. The emotion classifier over
//! them is trained by `callmood train`; nothing here is tuned by hand.
//!
//! The arithmetic follows OpenAI's `whisper/audio.py` and `whisper/model.py` (periodic Hann
//! window of 400, hop 160, 80 mel bands from the file's own filter bank, `log10` clamped to
//! 8 decades below the maximum, `(x + 4) / 4`; exact GELU; layer norm ε 1e-5). Long utterances
//! are cut into pieces of at most [`MAX_CHUNK_FRAMES`] mel frames that are encoded
//! separately (the positional table restarts) and pooled together.
//!
//! Sans-I/O apart from [`Encoder::load`]: a loaded encoder is an immutable value shared by
//! every call through an `Arc`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::asr::ggml::{read_ggml_summary, GgmlSummary, GgmlType};

/// Encoder blocks run (of tiny.en's 4); chosen by speaker-grouped cross-validation on
/// RAVDESS (the outputs of blocks 1 and 2 scored best, see `models/README.md`).
pub const EMBED_BLOCKS: usize = 2;
/// Width of tiny/tiny.en's encoder.
pub const EMBED_STATE: usize = 384;
/// Numbers per utterance: a mean and an SD per dimension per block.
pub const N_EMBED: usize = EMBED_BLOCKS * 2 * EMBED_STATE;
/// Longest piece encoded at once, in 10 ms mel frames (attention cost grows with its square).
pub const MAX_CHUNK_FRAMES: usize = 1000;
/// Shortest audio embedded, samples at 16 kHz (0.1 s); shorter gives NaN (read as "at the
/// speaker's baseline" by the model).
pub const MIN_SAMPLES: usize = 1600;
/// Speech level every utterance is brought to before the log-mel front end: an RMS of 0.05
/// (−26 dBFS) over its active 10 ms frames (see [`active_rms`]). Whisper's log-mel values
/// shift with the input level, and the level of a phone call says more about the handset
/// and the line than about the caller; loudness stays in the DSP features, read against the
/// caller's own baseline.
pub const TARGET_RMS: f32 = 0.05;
/// 10 ms frames more than this far below the loudest one do not count toward the level.
pub const LEVEL_RANGE_DB: f32 = 35.0;

const N_FFT: usize = 400;
const HOP: usize = 160;
const N_BINS: usize = N_FFT / 2 + 1;
const LN_EPS: f32 = 1e-5;

/// Why the encoder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// Reading or parsing the GGML file failed.
    #[error(transparent)]
    Ggml(#[from] crate::asr::ggml::GgmlError),
    /// An I/O error while reading tensor data.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is a GGML Whisper model but not one this encoder can run.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: String,
        /// What does not fit.
        reason: String,
    },
}

/// One transformer block's weights (PyTorch layout: a linear's weight is `[out][in]`).
struct Block {
    attn_ln: (Vec<f32>, Vec<f32>),
    query: (Vec<f32>, Vec<f32>),
    key: Vec<f32>,
    value: (Vec<f32>, Vec<f32>),
    out: (Vec<f32>, Vec<f32>),
    mlp_ln: (Vec<f32>, Vec<f32>),
    fc1: (Vec<f32>, Vec<f32>),
    fc2: (Vec<f32>, Vec<f32>),
}

/// The front of Whisper's audio encoder (module docs).
pub struct Encoder {
    n_mels: usize,
    n_head: usize,
    n_ctx: usize,
    n_mlp: usize,
    /// Mel filter bank, `n_mels × N_BINS`.
    mel: Vec<f32>,
    conv1: (Vec<f32>, Vec<f32>),
    conv2: (Vec<f32>, Vec<f32>),
    /// Positional table, `n_ctx × EMBED_STATE`.
    pos: Vec<f32>,
    blocks: Vec<Block>,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    fingerprint: String,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("blocks", &self.blocks.len())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Reads tensors out of a GGML file by name, as f32, hashing the bytes it reads.
struct TensorReader<'a> {
    file: File,
    summary: &'a GgmlSummary,
    path: &'a Path,
    hash: u64,
}

impl TensorReader<'_> {
    fn io(&self, source: std::io::Error) -> EncoderError {
        EncoderError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn unsupported(&self, reason: String) -> EncoderError {
        EncoderError::Unsupported {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn raw(&mut self, offset: u64, bytes: usize) -> Result<Vec<u8>, EncoderError> {
        let mut buf = vec![0u8; bytes];
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| self.io(e))?;
        self.file.read_exact(&mut buf).map_err(|e| self.io(e))?;
        for &b in &buf {
            // FNV-1a, 64 bit: a fingerprint of exactly the weights this encoder uses.
            self.hash = (self.hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Ok(buf)
    }

    /// The tensor `name`, which must hold `len` elements.
    fn tensor(&mut self, name: &str, len: usize) -> Result<Vec<f32>, EncoderError> {
        let info = self
            .summary
            .tensor(name)
            .ok_or_else(|| self.unsupported(format!("no tensor `{name}`")))?
            .clone();
        if info.n_elements() != len {
            return Err(self.unsupported(format!(
                "tensor `{name}` has {} elements, expected {len}",
                info.n_elements()
            )));
        }
        let bytes = self.raw(info.data_offset, len * info.ty.size())?;
        Ok(match info.ty {
            GgmlType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            GgmlType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        })
    }

    fn pair(
        &mut self,
        prefix: &str,
        w: usize,
        b: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), EncoderError> {
        Ok((
            self.tensor(&format!("{prefix}.weight"), w)?,
            self.tensor(&format!("{prefix}.bias"), b)?,
        ))
    }
}

impl Encoder {
    /// Loads the encoder's front end from a whisper.cpp GGML model with a 384-wide encoder
    /// of at least [`EMBED_BLOCKS`] blocks (tiny or tiny.en).
    pub fn load(path: &Path) -> Result<Self, EncoderError> {
        let summary = read_ggml_summary(path)?;
        let hp = summary.hparams;
        let mut r = TensorReader {
            file: File::open(path).map_err(|source| EncoderError::Io {
                path: path.display().to_string(),
                source,
            })?,
            summary: &summary,
            path,
            hash: 0xcbf2_9ce4_8422_2325,
        };
        if hp.n_audio_state as usize != EMBED_STATE
            || (hp.n_audio_layer as usize) < EMBED_BLOCKS
            || hp.n_audio_head <= 0
            || !EMBED_STATE.is_multiple_of(hp.n_audio_head as usize)
        {
            return Err(r.unsupported(format!(
                "encoder width {} with {} blocks and {} heads; the voice model needs Whisper \
                 tiny's ({EMBED_STATE} wide, at least {EMBED_BLOCKS} blocks)",
                hp.n_audio_state, hp.n_audio_layer, hp.n_audio_head
            )));
        }
        let n_mels = hp.n_mels.max(0) as usize;
        if summary.mel_cols != N_BINS || summary.mel_rows != n_mels {
            return Err(r.unsupported(format!(
                "mel filter bank {}×{}, expected {n_mels}×{N_BINS}",
                summary.mel_rows, summary.mel_cols
            )));
        }
        // The filter bank follows magic, 11 hyper-parameters, rows and cols.
        let mel_bytes = r.raw(4 + 11 * 4 + 8, n_mels * N_BINS * 4)?;
        let mel = mel_bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let n_ctx = hp.n_audio_ctx.max(0) as usize;
        let s = EMBED_STATE;
        let conv1 = r.pair("encoder.conv1", s * n_mels * 3, s)?;
        let conv2 = r.pair("encoder.conv2", s * s * 3, s)?;
        let pos = r.tensor("encoder.positional_embedding", n_ctx * s)?;
        let mlp_len = summary
            .tensor("encoder.blocks.0.mlp.0.bias")
            .map(|t| t.n_elements())
            .unwrap_or(0);
        if mlp_len == 0 {
            return Err(r.unsupported("no `encoder.blocks.0.mlp.0.bias`".into()));
        }
        let mut blocks = Vec::with_capacity(EMBED_BLOCKS);
        for i in 0..EMBED_BLOCKS {
            let p = format!("encoder.blocks.{i}");
            blocks.push(Block {
                attn_ln: r.pair(&format!("{p}.attn_ln"), s, s)?,
                query: r.pair(&format!("{p}.attn.query"), s * s, s)?,
                key: r.tensor(&format!("{p}.attn.key.weight"), s * s)?,
                value: r.pair(&format!("{p}.attn.value"), s * s, s)?,
                out: r.pair(&format!("{p}.attn.out"), s * s, s)?,
                mlp_ln: r.pair(&format!("{p}.mlp_ln"), s, s)?,
                fc1: r.pair(&format!("{p}.mlp.0"), mlp_len * s, mlp_len)?,
                fc2: r.pair(&format!("{p}.mlp.2"), s * mlp_len, s)?,
            });
        }
        let fingerprint = format!("fnv1a64:{:016x}", r.hash);
        let window = crate::core::dsp::periodic_hann(N_FFT);
        Ok(Self {
            n_mels,
            n_head: hp.n_audio_head as usize,
            n_ctx,
            n_mlp: mlp_len,
            mel,
            conv1,
            conv2,
            pos,
            blocks,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
            window,
            fingerprint,
        })
    }

    /// A hash of the weights and filter bank this encoder runs, written into trained models
    /// so that a model is never used with encoder weights it was not trained on.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whisper's log-mel spectrogram of 16 kHz audio, time-major (`frames × n_mels`).
    pub fn log_mel(&self, audio: &[f32]) -> Vec<f32> {
        let n = audio.len();
        let frames = n / HOP;
        if n <= N_FFT / 2 || frames == 0 {
            return Vec::new();
        }
        let pad = N_FFT / 2;
        let at = |i: usize| -> f32 {
            // Reflect padding, as torch.stft(center=True).
            let j = i as isize - pad as isize;
            let j = if j < 0 {
                -j
            } else if j >= n as isize {
                2 * (n as isize - 1) - j
            } else {
                j
            };
            audio[j as usize]
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = [0.0f32; N_BINS];
        let mut out = vec![0.0f32; frames * self.n_mels];
        for t in 0..frames {
            for (k, v) in input.iter_mut().enumerate() {
                *v = at(t * HOP + k) * self.window[k];
            }
            if self.fft.process(&mut input, &mut spectrum).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, o) in out[t * self.n_mels..(t + 1) * self.n_mels]
                .iter_mut()
                .enumerate()
            {
                let row = &self.mel[m * N_BINS..(m + 1) * N_BINS];
                let e: f32 = row.iter().zip(&power).map(|(a, b)| a * b).sum();
                *o = e.max(1e-10).log10();
            }
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in out.iter_mut() {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        out
    }

    /// Each block's output for one piece of log-mel (`frames × n_mels`, at most
    /// `2 × n_ctx` frames): `EMBED_BLOCKS` matrices of `positions × EMBED_STATE`.
    pub fn hidden_states(&self, mel: &[f32]) -> Vec<Vec<f32>> {
        let s = EMBED_STATE;
        let tm = mel.len() / self.n_mels;
        if tm == 0 {
            return Vec::new();
        }
        let h = conv1d(mel, tm, self.n_mels, &self.conv1, 1);
        let mut x = conv1d(&h, tm, s, &self.conv2, 2);
        let t = x.len() / s;
        for (row, p) in x
            .chunks_exact_mut(s)
            .zip(self.pos.chunks_exact(s))
            .take(self.n_ctx)
        {
            for (a, b) in row.iter_mut().zip(p) {
                *a += b;
            }
        }
        let mut outs = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            self.block(b, &mut x, t);
            outs.push(x.clone());
        }
        outs
    }

    fn block(&self, b: &Block, x: &mut [f32], t: usize) {
        let s = EMBED_STATE;
        let h = layer_norm(x, s, &b.attn_ln);
        let mut q = linear(&h, t, s, &b.query.0, Some(&b.query.1), s);
        let k = linear(&h, t, s, &b.key, None, s);
        let v = linear(&h, t, s, &b.value.0, Some(&b.value.1), s);
        let dh = s / self.n_head;
        let scale = 1.0 / (dh as f32).sqrt();
        q.iter_mut().for_each(|v| *v *= scale);
        let mut att = vec![0.0f32; t * s];
        let mut scores = vec![0.0f32; t * t];
        for head in 0..self.n_head {
            let o = head * dh;
            // scores = Q_h · K_hᵀ
            gemm(
                (t, dh, t),
                (&q[o..], s, 1),
                (&k[o..], 1, s),
                (&mut scores, t, 1),
            );
            for row in scores.chunks_exact_mut(t) {
                crate::emotion::softmax_in_place(row);
            }
            // att_h = P · V_h
            gemm(
                (t, t, dh),
                (&scores, t, 1),
                (&v[o..], s, 1),
                (&mut att[o..], s, 1),
            );
        }
        let a = linear(&att, t, s, &b.out.0, Some(&b.out.1), s);
        add_in_place(x, &a);
        let h = layer_norm(x, s, &b.mlp_ln);
        let mut m = linear(&h, t, s, &b.fc1.0, Some(&b.fc1.1), self.n_mlp);
        m.iter_mut().for_each(|v| *v = gelu(*v));
        let m = linear(&m, t, self.n_mlp, &b.fc2.0, Some(&b.fc2.1), s);
        add_in_place(x, &m);
    }

    /// The [`N_EMBED`] pooled numbers of one utterance's 16 kHz audio (block by block: the
    /// means of every dimension, then their SDs); all NaN when the audio is shorter than
    /// [`MIN_SAMPLES`].
    ///
    /// The audio is first scaled to [`TARGET_RMS`] (digital silence is left as it is), so the
    /// numbers do not depend on the recording level.
    pub fn embed(&self, audio: &[f32]) -> Vec<f32> {
        if audio.len() < MIN_SAMPLES {
            return vec![f32::NAN; N_EMBED];
        }
        let level = active_rms(audio);
        let gain = if level > 1e-6 {
            TARGET_RMS / level
        } else {
            1.0
        };
        let scaled: Vec<f32> = audio.iter().map(|v| v * gain).collect();
        let mel = self.log_mel(&scaled);
        let frames = mel.len() / self.n_mels;
        let pieces = frames.div_ceil(MAX_CHUNK_FRAMES.min(2 * self.n_ctx)).max(1);
        let per = frames.div_ceil(pieces);
        let mut sum = vec![0.0f64; EMBED_BLOCKS * EMBED_STATE];
        let mut sq = vec![0.0f64; EMBED_BLOCKS * EMBED_STATE];
        let mut n = 0usize;
        for piece in mel.chunks(per * self.n_mels) {
            let states = self.hidden_states(piece);
            for (bi, st) in states.iter().enumerate() {
                for row in st.chunks_exact(EMBED_STATE) {
                    let o = bi * EMBED_STATE;
                    for (j, &v) in row.iter().enumerate() {
                        sum[o + j] += v as f64;
                        sq[o + j] += v as f64 * v as f64;
                    }
                }
            }
            n += states.first().map_or(0, |s| s.len() / EMBED_STATE);
        }
        if n == 0 {
            return vec![f32::NAN; N_EMBED];
        }
        let mut out = vec![0.0f32; N_EMBED];
        for bi in 0..EMBED_BLOCKS {
            for j in 0..EMBED_STATE {
                let i = bi * EMBED_STATE + j;
                let mean = sum[i] / n as f64;
                let var = (sq[i] / n as f64 - mean * mean).max(0.0);
                out[bi * 2 * EMBED_STATE + j] = mean as f32;
                out[bi * 2 * EMBED_STATE + EMBED_STATE + j] = var.sqrt() as f32;
            }
        }
        out
    }
}

/// RMS of `audio` over its active 10 ms frames (160 samples; the last may be shorter): those
/// whose power is within [`LEVEL_RANGE_DB`] of the loudest frame's. 0 for empty or silent
/// audio.
pub fn active_rms(audio: &[f32]) -> f32 {
    let powers: Vec<f64> = audio
        .chunks(HOP)
        .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / c.len() as f64)
        .collect();
    let loudest = powers.iter().copied().fold(0.0f64, f64::max);
    if loudest <= 0.0 {
        return 0.0;
    }
    let floor = loudest * 10f64.powf(-(LEVEL_RANGE_DB as f64) / 10.0);
    let (sum, n) = powers
        .iter()
        .filter(|&&p| p >= floor)
        .fold((0.0f64, 0usize), |(s, n), &p| (s + p, n + 1));
    (sum / n as f64).sqrt() as f32
}

/// Names of the [`N_EMBED`] numbers, in [`Encoder::embed`] order: `enc{b}_mean_{j}` then
/// `enc{b}_sd_{j}` for block `b`.
pub fn embed_feature_names() -> impl Iterator<Item = String> {
    (0..EMBED_BLOCKS).flat_map(|b| {
        ["mean", "sd"]
            .into_iter()
            .flat_map(move |stat| (0..EMBED_STATE).map(move |j| format!("enc{b}_{stat}_{j:03}")))
    })
}

/// `C = A·B` for strided row/column views: `dims = (m, k, n)`, each matrix given as
/// `(data, row stride, column stride)`; `C` is overwritten. ndarray hands the product to
/// matrixmultiply's blocked kernels.
#[allow(clippy::type_complexity)]
fn gemm(
    (m, k, n): (usize, usize, usize),
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: (&mut [f32], usize, usize),
) {
    use ndarray::{linalg::general_mat_mul, ArrayView2, ArrayViewMut2, ShapeBuilder};
    let av = ArrayView2::from_shape((m, k).strides((a.1, a.2)), a.0).expect("gemm: A view");
    let bv = ArrayView2::from_shape((k, n).strides((b.1, b.2)), b.0).expect("gemm: B view");
    let mut cv = ArrayViewMut2::from_shape((m, n).strides((c.1, c.2)), c.0).expect("gemm: C view");
    general_mat_mul(1.0, &av, &bv, 0.0, &mut cv);
}

/// `x · Wᵀ + b` for `x` of `t × d_in` and a PyTorch weight `W` of `d_out × d_in`.
fn linear(
    x: &[f32],
    t: usize,
    d_in: usize,
    w: &[f32],
    b: Option<&[f32]>,
    d_out: usize,
) -> Vec<f32> {
    let mut y = vec![0.0f32; t * d_out];
    gemm(
        (t, d_in, d_out),
        (x, d_in, 1),
        (w, 1, d_in),
        (&mut y, d_out, 1),
    );
    if let Some(b) = b {
        for row in y.chunks_exact_mut(d_out) {
            add_in_place(row, b);
        }
    }
    y
}

/// A kernel-3, padding-1 convolution with GELU, over `x` of `t × c_in` (time-major);
/// `w` is PyTorch's `[c_out][c_in][3]`. Returns `t_out × c_out`.
fn conv1d(
    x: &[f32],
    t: usize,
    c_in: usize,
    (w, b): &(Vec<f32>, Vec<f32>),
    stride: usize,
) -> Vec<f32> {
    let c_out = b.len();
    let t_out = (t + 2 - 3) / stride + 1;
    let kc = c_in * 3;
    let mut cols = vec![0.0f32; t_out * kc];
    for (to, row) in cols.chunks_exact_mut(kc).enumerate() {
        for k in 0..3 {
            let ti = (to * stride + k) as isize - 1;
            if ti < 0 || ti >= t as isize {
                continue;
            }
            let src = &x[ti as usize * c_in..(ti as usize + 1) * c_in];
            for (c, &v) in src.iter().enumerate() {
                row[c * 3 + k] = v;
            }
        }
    }
    let mut y = linear(&cols, t_out, kc, w, Some(b), c_out);
    y.iter_mut().for_each(|v| *v = gelu(*v));
    y
}

fn layer_norm(x: &[f32], d: usize, (g, b): &(Vec<f32>, Vec<f32>)) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for (row, out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + LN_EPS).sqrt();
        for j in 0..d {
            out[j] = (row[j] - mean) * inv * g[j] + b[j];
        }
    }
    y
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Exact GELU, `x·Φ(x)`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// The error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
pub fn erf(x: f32) -> f32 {
    let (s, x) = if x < 0.0 {
        (-1.0, -x as f64)
    } else {
        (1.0, x as f64)
    };
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.0, -0.842_700_8),
        ] {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }

    /// The level counts the speech frames only: a tone with as much silence after it has the
    /// tone's RMS, a frame 40 dB down does not count, silence has none.
    #[test]
    fn active_rms_ignores_silence_and_quiet_frames() {
        let tone: Vec<f32> = (0..16_000)
            .map(|i| 0.2 * (2.0 * std::f32::consts::PI * 250.0 * i as f32 / 16_000.0).sin())
            .collect();
        let want = 0.2 / 2f32.sqrt();
        let mut padded = tone.clone();
        padded.extend(std::iter::repeat_n(0.0, 16_000));
        padded.extend(tone[..1600].iter().map(|v| v * 0.01));
        for x in [&tone, &padded] {
            assert!(
                (active_rms(x) - want).abs() < 1e-3 * want,
                "{}",
                active_rms(x)
            );
        }
        assert_eq!(active_rms(&[0.0; 3200]), 0.0);
        assert_eq!(active_rms(&[]), 0.0);
    }

    /// The strided product against a direct triple loop, with a transposed operand.
    #[test]
    fn gemm_matches_direct_product() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32).sin()).collect(); // n × k
        let y = linear(&a, m, k, &w, Some(&[1.0, 2.0, 3.0, 4.0, 5.0]), n);
        for i in 0..m {
            for j in 0..n {
                let want: f32 =
                    (0..k).map(|q| a[i * k + q] * w[j * k + q]).sum::<f32>() + (j + 1) as f32;
                assert!((y[i * n + j] - want).abs() < 1e-5);
            }
        }
    }

    /// Convolution against a direct sum, stride 1 and 2, with the zero padding at both ends.
    #[test]
    fn conv_matches_direct_sum() {
        let (t, c_in, c_out) = (7, 2, 3);
        let x: Vec<f32> = (0..t * c_in).map(|i| (i as f32 * 0.3).cos()).collect();
        let w: Vec<f32> = (0..c_out * c_in * 3)
            .map(|i| (i as f32 * 0.7).sin() * 0.5)
            .collect();
        let b = vec![0.1, -0.2, 0.3];
        let wb = (w.clone(), b.clone());
        for stride in [1, 2] {
            let y = conv1d(&x, t, c_in, &wb, stride);
            let t_out = (t - 1) / stride + 1;
            assert_eq!(y.len(), t_out * c_out);
            for to in 0..t_out {
                for o in 0..c_out {
                    let mut acc = b[o];
                    for c in 0..c_in {
                        for k in 0..3 {
                            let ti = (to * stride + k) as isize - 1;
                            if (0..t as isize).contains(&ti) {
                                acc += w[(o * c_in + c) * 3 + k] * x[ti as usize * c_in + c];
                            }
                        }
                    }
                    assert!((y[to * c_out + o] - gelu(acc)).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn names_are_unique_and_complete() {
        let names: Vec<String> = embed_feature_names().collect();
        assert_eq!(names.len(), N_EMBED);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), N_EMBED);
        assert_eq!(names[EMBED_STATE], "enc0_sd_000");
    }
}
