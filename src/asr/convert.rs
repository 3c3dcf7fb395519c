//! CTranslate2 Whisper model → whisper.cpp GGML file, in pure Rust.
//!
//! Input: a CTranslate2 model directory (`model.bin`, binary format version 6, spec
//! `WhisperSpec`, float16/float32/bfloat16 weights), OpenAI's mel filter bank
//! (`mel_filters.npz`) and GPT-2 byte-level BPE ranks (`gpt2.tiktoken`). Output: the GGML
//! layout documented in [`super::ggml`], with OpenAI's PyTorch tensor names.
//!
//! The CTranslate2 file (`ctranslate2/specs/model_spec.py`, `_serialize`) is: `u32` version,
//! the spec name, `u32` revision, `u32` variable count, then per variable its name, `u8` rank,
//! `u32` dims, `u8` dtype id, `u32` byte count and the raw data; then `u32` alias count and
//! (alias, target) name pairs. Strings are a `u16` length that counts a trailing NUL, then the
//! bytes including that NUL.
//!
//! Mapping (per block `N`; `d` = model width):
//! - `…/self_attention/linear_0` holds query, key and value fused along the rows (`3d × d`):
//!   split into `attn.query`, `attn.key`, `attn.value`.
//! - decoder `…/attention/linear_0` is the cross-attention query alone; `linear_1` fuses
//!   key and value (`2d × d`); `linear_2` is the output.
//! - The key projection has no bias in Whisper; CTranslate2 stores zeros there and we drop
//!   them. (Even a non-zero key bias would be exact to drop: it adds the same amount to every
//!   score of one query, which the softmax cancels.)
//! - Layer norms `gamma`/`beta` become `weight`/`bias`; the last linear of each attention is
//!   `out`; `ffn/linear_0|1` are `mlp.0|2`.
//! - `decoder/projection/weight` is an alias of the token embedding (tied), which is what
//!   whisper.cpp assumes; an untied projection is refused.
//! - Types: matrices f16; 1-D tensors, conv biases (written as `[n, 1]`) and positional
//!   embeddings f32, as whisper.cpp's loader declares them.
//! - With [`ConvertOptions::quantize`], the 2-D matrices (linear weights and the token
//!   embedding: exactly the tensors whisper.cpp gives the file's weight type) are written in
//!   that [`QuantType`] instead of f16, and the header's `ftype` says so as whisper.cpp's own
//!   `quantize` tool writes it (`2007` for q8_0). Convolutions stay f16, everything else f32.
//!   The quantised values are computed from the source weights, not from an f16 copy.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use half::{bf16, f16};
use ndarray::Array2;
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use super::ggml::{GgmlType, HParams, GGML_MAGIC};
use super::quant::{QuantType, BLOCK};

/// The only CTranslate2 binary format version this reader knows.
pub const CT2_FORMAT_VERSION: u32 = 6;
/// Spec name of Whisper models in CTranslate2.
pub const CT2_WHISPER_SPEC: &str = "WhisperSpec";
/// FFT bins of Whisper's 400-point STFT: the mel filter bank's column count.
pub const MEL_FFT_BINS: usize = 201;
/// Refuse inputs larger than this (bytes): a tiny.en `model.bin` is 76 MB, large-v3 3.1 GB.
const MAX_MODEL_BYTES: u64 = 8 << 30;
/// Refuse tokenizer / filter files larger than this (bytes).
const MAX_AUX_BYTES: u64 = 64 << 20;

/// Where the converter reads and writes.
#[derive(Debug, Clone)]
pub struct ConvertPaths {
    /// CTranslate2 model directory holding `model.bin`.
    pub ct2_dir: PathBuf,
    /// OpenAI's `mel_filters.npz` (uses the `mel_{n_mels}` array).
    pub mel_filters: PathBuf,
    /// OpenAI's `gpt2.tiktoken` (base64 token, rank; one per line).
    pub tiktoken: PathBuf,
    /// GGML file to write (replaced atomically: written beside it, then renamed).
    pub out: PathBuf,
}

/// How the converter writes the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Write the 2-D weight matrices in this block format instead of f16 (`None`: f16).
    pub quantize: Option<QuantType>,
}

/// What the converter wrote.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// Hyper-parameters written to the header.
    pub hparams: HParams,
    /// Number of tensors written.
    pub n_tensors: usize,
    /// Number of vocabulary entries written (whisper.cpp adds the special tokens itself).
    pub n_vocab_tokens: usize,
    /// Mel filter bank shape (bands, FFT bins).
    pub mel_shape: (usize, usize),
    /// Size of the output file, bytes.
    pub bytes_written: u64,
    /// Block format of the weight matrices (`None`: f16).
    pub quantized: Option<QuantType>,
    /// Tensors written in that block format.
    pub n_quantized: usize,
}

/// Conversion failed; every variant names the file (and tensor) at fault. All are fatal for
/// the conversion; no partial output is left at [`ConvertPaths::out`].
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `model.bin` does not follow the CTranslate2 layout this reader knows.
    #[error("{path}: not a CTranslate2 v6 Whisper model: {reason}")]
    Ct2Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A tensor Whisper needs is absent.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// CTranslate2 name of the tensor.
        name: String,
    },
    /// A tensor has a shape that does not fit the model's hyper-parameters.
    #[error("{path}: tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    BadShape {
        /// The file.
        path: PathBuf,
        /// CTranslate2 name of the tensor.
        name: String,
        /// Shape found.
        actual: Vec<usize>,
        /// Shape required.
        expected: Vec<usize>,
    },
    /// A tensor is stored in a type the converter cannot turn into f16/f32.
    #[error("{path}: tensor `{name}` has unsupported CTranslate2 dtype id {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// CTranslate2 name of the tensor.
        name: String,
        /// CTranslate2 dtype id.
        dtype: u8,
    },
    /// The `.npz` mel filter bank is unusable.
    #[error("{path}: mel filters: {reason}")]
    MelFilters {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A matrix cannot be written in the requested block format.
    #[error("tensor `{name}`: rows of {row_len} values are not whole {BLOCK}-value blocks, so it cannot be written as {quant}")]
    NotBlockAligned {
        /// GGML name of the tensor.
        name: String,
        /// Values per row (the fastest-varying dimension).
        row_len: usize,
        /// The requested format.
        quant: QuantType,
    },
    /// The tiktoken vocabulary is unusable.
    #[error("{path}:{line}: tiktoken vocabulary: {reason}")]
    Tiktoken {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the problem concerns the whole file).
        line: usize,
        /// What was wrong.
        reason: String,
    },
}

/// Converts a CTranslate2 Whisper model into a whisper.cpp GGML file (f16 matrices).
pub fn convert_ct2_to_ggml(paths: &ConvertPaths) -> Result<ConvertReport, ConvertError> {
    convert_ct2_to_ggml_with(paths, &ConvertOptions::default())
}

/// Converts a CTranslate2 Whisper model into a whisper.cpp GGML file, f16 or quantised
/// matrices as `options` say.
pub fn convert_ct2_to_ggml_with(
    paths: &ConvertPaths,
    options: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    let model_path = paths.ct2_dir.join("model.bin");
    let model_bytes = read_file(&model_path, MAX_MODEL_BYTES)?;
    let model = Ct2Model::parse(&model_bytes, &model_path)?;
    let mut hparams = model.hparams()?;
    let mut tensors = plan_tensors(&model, &hparams)?;
    let n_quantized = match options.quantize {
        Some(q) => {
            hparams.ftype = q.header_ftype();
            quantize_matrices(&mut tensors, q)?
        }
        None => 0,
    };

    let n_mels = usize::try_from(hparams.n_mels).unwrap_or(0);
    let mel = read_mel_filters(&paths.mel_filters, n_mels)?;
    let vocab = read_tiktoken(&paths.tiktoken)?;
    if vocab.len() > hparams.n_vocab as usize {
        return Err(ConvertError::Tiktoken {
            path: paths.tiktoken.clone(),
            line: 0,
            reason: format!(
                "{} tokens, more than the model's {} embeddings",
                vocab.len(),
                hparams.n_vocab
            ),
        });
    }

    let tmp = partial_path(&paths.out);
    let result = write_ggml(&tmp, &hparams, &mel, &vocab, &tensors);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &paths.out).map_err(|source| ConvertError::Io {
        path: paths.out.clone(),
        source,
    })?;
    let bytes_written = std::fs::metadata(&paths.out)
        .map_err(|source| ConvertError::Io {
            path: paths.out.clone(),
            source,
        })?
        .len();

    Ok(ConvertReport {
        hparams,
        n_tensors: tensors.len(),
        n_vocab_tokens: vocab.len(),
        mel_shape: (mel.rows, mel.cols),
        bytes_written,
        quantized: options.quantize,
        n_quantized,
    })
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, ConvertError> {
    let io_err = |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > max {
        return Err(ConvertError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("{len} bytes, more than the {max} allowed")),
        });
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(max).read_to_end(&mut buf).map_err(io_err)?;
    Ok(buf)
}

// ---------------------------------------------------------------------------------------------
// CTranslate2 reader

/// Element type ids of CTranslate2 (`ctranslate2::DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::Bf16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }

    fn id(self) -> u8 {
        match self {
            Ct2Dtype::F32 => 0,
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 => 2,
            Ct2Dtype::I32 => 3,
            Ct2Dtype::F16 => 4,
            Ct2Dtype::Bf16 => 5,
        }
    }
}

/// A tensor (or a row range of one) borrowed from `model.bin`.
#[derive(Debug, Clone)]
struct Ct2Tensor<'a> {
    name: String,
    dims: Vec<usize>,
    dtype: Ct2Dtype,
    data: &'a [u8],
}

impl<'a> Ct2Tensor<'a> {
    /// Rows `start..start + count` along the first axis.
    fn rows(&self, start: usize, count: usize) -> Ct2Tensor<'a> {
        let row_elems: usize = self.dims.iter().skip(1).product();
        let row_bytes = row_elems * self.dtype.size();
        let mut dims = self.dims.clone();
        dims[0] = count;
        Ct2Tensor {
            name: self.name.clone(),
            dims,
            dtype: self.dtype,
            data: &self.data[start * row_bytes..(start + count) * row_bytes],
        }
    }

    /// The value of an integer scalar (`num_heads` and the like).
    fn scalar_int(&self) -> Option<i64> {
        let d = self.data;
        match self.dtype {
            Ct2Dtype::I8 => d.first().map(|&b| b as i8 as i64),
            Ct2Dtype::I16 => Some(i16::from_le_bytes([*d.first()?, *d.get(1)?]) as i64),
            Ct2Dtype::I32 => Some(i32::from_le_bytes(d.get(..4)?.try_into().ok()?) as i64),
            _ => None,
        }
    }
}

struct Ct2Model<'a> {
    path: &'a Path,
    vars: HashMap<String, Ct2Tensor<'a>>,
    aliases: HashMap<String, String>,
}

struct ByteCursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> ByteCursor<'a> {
    fn err(&self, reason: String) -> ConvertError {
        ConvertError::Ct2Format {
            path: self.path.to_path_buf(),
            reason: format!("{reason} (at byte {})", self.pos),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(format!("file ends inside {what}")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `u16` length (counting a trailing NUL), bytes, NUL.
    fn string(&mut self, what: &str) -> Result<String, ConvertError> {
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
}

impl<'a> Ct2Model<'a> {
    fn parse(buf: &'a [u8], path: &'a Path) -> Result<Self, ConvertError> {
        let mut c = ByteCursor { buf, pos: 0, path };
        let version = c.u32("format version")?;
        if version != CT2_FORMAT_VERSION {
            return Err(c.err(format!(
                "format version {version}, expected {CT2_FORMAT_VERSION}"
            )));
        }
        let spec = c.string("spec name")?;
        if spec != CT2_WHISPER_SPEC {
            return Err(c.err(format!("spec `{spec}`, expected `{CT2_WHISPER_SPEC}`")));
        }
        let _revision = c.u32("spec revision")?;
        let n_vars = c.u32("variable count")? as usize;
        let mut vars = HashMap::new();
        for _ in 0..n_vars {
            let name = c.string("variable name")?;
            let rank = c.u8("rank")? as usize;
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(c.u32("dimension")? as usize);
            }
            let dtype_id = c.u8("dtype")?;
            let n_bytes = c.u32("byte count")? as usize;
            let data = c.take(n_bytes, "tensor data")?;
            let dtype =
                Ct2Dtype::from_id(dtype_id).ok_or_else(|| ConvertError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    dtype: dtype_id,
                })?;
            let n_elems = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| c.err(format!("`{name}`: dims {dims:?} overflow")))?;
            if n_elems.checked_mul(dtype.size()) != Some(n_bytes) {
                return Err(c.err(format!(
                    "`{name}`: {n_bytes} bytes do not hold dims {dims:?} of dtype {dtype_id}"
                )));
            }
            vars.insert(
                name.clone(),
                Ct2Tensor {
                    name,
                    dims,
                    dtype,
                    data,
                },
            );
        }
        let n_aliases = c.u32("alias count")? as usize;
        let mut aliases = HashMap::new();
        for _ in 0..n_aliases {
            let alias = c.string("alias name")?;
            let target = c.string("alias target")?;
            aliases.insert(alias, target);
        }
        if c.pos != buf.len() {
            return Err(c.err(format!("{} trailing bytes", buf.len() - c.pos)));
        }
        Ok(Ct2Model {
            path,
            vars,
            aliases,
        })
    }

    fn get(&self, name: &str) -> Result<&Ct2Tensor<'a>, ConvertError> {
        let resolved = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.vars
            .get(resolved)
            .ok_or_else(|| ConvertError::MissingTensor {
                path: self.path.to_path_buf(),
                name: name.to_string(),
            })
    }

    fn shaped(&self, name: &str, expected: &[usize]) -> Result<&Ct2Tensor<'a>, ConvertError> {
        let t = self.get(name)?;
        if t.dims != expected {
            return Err(ConvertError::BadShape {
                path: self.path.to_path_buf(),
                name: name.to_string(),
                actual: t.dims.clone(),
                expected: expected.to_vec(),
            });
        }
        Ok(t)
    }

    fn count_layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.vars
                    .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }

    fn dims_of(&self, name: &str, rank: usize) -> Result<Vec<usize>, ConvertError> {
        let t = self.get(name)?;
        if t.dims.len() != rank {
            return Err(ConvertError::Ct2Format {
                path: self.path.to_path_buf(),
                reason: format!("`{name}` has rank {}, expected {rank}", t.dims.len()),
            });
        }
        Ok(t.dims.clone())
    }

    fn heads(&self, name: &str) -> Result<i32, ConvertError> {
        self.get(name)?
            .scalar_int()
            .and_then(|v| i32::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| ConvertError::Ct2Format {
                path: self.path.to_path_buf(),
                reason: format!("`{name}` is not a positive integer scalar"),
            })
    }

    /// Hyper-parameters from tensor shapes and the stored head counts.
    fn hparams(&self) -> Result<HParams, ConvertError> {
        let to_i32 = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| ConvertError::Ct2Format {
                path: self.path.to_path_buf(),
                reason: format!("{what} {v} does not fit in i32"),
            })
        };
        let emb = self.dims_of("decoder/embeddings/weight", 2)?;
        let enc_pos = self.dims_of("encoder/position_encodings/encodings", 2)?;
        let dec_pos = self.dims_of("decoder/position_encodings/encodings", 2)?;
        let conv1 = self.dims_of("encoder/conv1/weight", 3)?;
        let n_audio_layer = self.count_layers("encoder");
        let n_text_layer = self.count_layers("decoder");
        if n_audio_layer == 0 || n_text_layer == 0 {
            return Err(ConvertError::MissingTensor {
                path: self.path.to_path_buf(),
                name: "encoder|decoder/layer_0/ffn/linear_0/weight".into(),
            });
        }
        if enc_pos[1] != dec_pos[1] || emb[1] != dec_pos[1] {
            return Err(ConvertError::Ct2Format {
                path: self.path.to_path_buf(),
                reason: format!(
                    "encoder width {} and decoder width {} differ; whisper.cpp needs them equal",
                    enc_pos[1], dec_pos[1]
                ),
            });
        }
        Ok(HParams {
            n_vocab: to_i32(emb[0], "n_vocab")?,
            n_audio_ctx: to_i32(enc_pos[0], "n_audio_ctx")?,
            n_audio_state: to_i32(enc_pos[1], "n_audio_state")?,
            n_audio_head: self.heads("encoder/num_heads")?,
            n_audio_layer: to_i32(n_audio_layer, "n_audio_layer")?,
            n_text_ctx: to_i32(dec_pos[0], "n_text_ctx")?,
            n_text_state: to_i32(dec_pos[1], "n_text_state")?,
            n_text_head: self.heads("decoder/num_heads")?,
            n_text_layer: to_i32(n_text_layer, "n_text_layer")?,
            n_mels: to_i32(conv1[1], "n_mels")?,
            ftype: 1,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor mapping

/// One tensor to write.
struct OutTensor<'a> {
    name: String,
    /// PyTorch order (slowest first).
    shape: Vec<usize>,
    ty: GgmlType,
    /// Written in this block format instead of `ty`.
    quant: Option<QuantType>,
    src: Ct2Tensor<'a>,
}

/// Marks the 2-D f16 matrices for `q`; returns how many. whisper.cpp creates exactly these
/// (linear weights, token embedding) with the file's weight type; the 3-D convolutions
/// stay f16 and the f32 tensors stay f32.
fn quantize_matrices(tensors: &mut [OutTensor<'_>], q: QuantType) -> Result<usize, ConvertError> {
    let mut n = 0;
    for t in tensors
        .iter_mut()
        .filter(|t| t.shape.len() == 2 && t.ty == GgmlType::F16)
    {
        let row_len = t.shape[1];
        if !row_len.is_multiple_of(BLOCK) {
            return Err(ConvertError::NotBlockAligned {
                name: t.name.clone(),
                row_len,
                quant: q,
            });
        }
        t.quant = Some(q);
        n += 1;
    }
    Ok(n)
}

struct Planner<'m, 'a> {
    model: &'m Ct2Model<'a>,
    out: Vec<OutTensor<'a>>,
}

impl<'a> Planner<'_, 'a> {
    /// A tensor copied whole: f16 if a matrix, f32 if 1-D.
    fn copy(&mut self, src: &str, dst: &str, shape: &[usize]) -> Result<(), ConvertError> {
        let t = self.model.shaped(src, shape)?.clone();
        let ty = if shape.len() >= 2 {
            GgmlType::F16
        } else {
            GgmlType::F32
        };
        self.push(dst, shape.to_vec(), ty, t);
        Ok(())
    }

    fn push(&mut self, dst: &str, shape: Vec<usize>, ty: GgmlType, src: Ct2Tensor<'a>) {
        self.out.push(OutTensor {
            name: dst.to_string(),
            shape,
            ty,
            quant: None,
            src,
        });
    }

    fn layer_norm(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        self.copy(&format!("{src}/gamma"), &format!("{dst}.weight"), &[d])?;
        self.copy(&format!("{src}/beta"), &format!("{dst}.bias"), &[d])
    }

    fn linear(
        &mut self,
        src: &str,
        dst: &str,
        rows: usize,
        cols: usize,
    ) -> Result<(), ConvertError> {
        self.copy(
            &format!("{src}/weight"),
            &format!("{dst}.weight"),
            &[rows, cols],
        )?;
        self.copy(&format!("{src}/bias"), &format!("{dst}.bias"), &[rows])
    }

    /// A fused projection whose rows are `parts` stacked (`d` rows each); each part is written
    /// under its own name. The key (named `…key`) gets no bias.
    fn split(&mut self, src: &str, dst: &[String], d: usize) -> Result<(), ConvertError> {
        let n = dst.len();
        let w = self
            .model
            .shaped(&format!("{src}/weight"), &[n * d, d])?
            .clone();
        let b = self.model.shaped(&format!("{src}/bias"), &[n * d])?.clone();
        for (i, name) in dst.iter().enumerate() {
            self.push(
                &format!("{name}.weight"),
                vec![d, d],
                GgmlType::F16,
                w.rows(i * d, d),
            );
            if !name.ends_with(".key") {
                self.push(
                    &format!("{name}.bias"),
                    vec![d],
                    GgmlType::F32,
                    b.rows(i * d, d),
                );
            }
        }
        Ok(())
    }

    fn attention_self(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        self.layer_norm(&format!("{src}/layer_norm"), &format!("{dst}_ln"), d)?;
        let parts = ["query", "key", "value"].map(|p| format!("{dst}.{p}"));
        self.split(&format!("{src}/linear_0"), &parts, d)?;
        self.linear(&format!("{src}/linear_1"), &format!("{dst}.out"), d, d)
    }

    fn attention_cross(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        self.layer_norm(&format!("{src}/layer_norm"), &format!("{dst}_ln"), d)?;
        self.linear(&format!("{src}/linear_0"), &format!("{dst}.query"), d, d)?;
        let parts = ["key", "value"].map(|p| format!("{dst}.{p}"));
        self.split(&format!("{src}/linear_1"), &parts, d)?;
        self.linear(&format!("{src}/linear_2"), &format!("{dst}.out"), d, d)
    }

    fn mlp(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ConvertError> {
        self.layer_norm(&format!("{src}/layer_norm"), &format!("{dst}_ln"), d)?;
        self.linear(&format!("{src}/linear_0"), &format!("{dst}.0"), 4 * d, d)?;
        self.linear(&format!("{src}/linear_1"), &format!("{dst}.2"), d, 4 * d)
    }
}

fn plan_tensors<'a>(
    model: &Ct2Model<'a>,
    hp: &HParams,
) -> Result<Vec<OutTensor<'a>>, ConvertError> {
    // Checked non-negative by construction in `hparams` (they came from usize).
    let d = hp.n_audio_state as usize;
    let n_mels = hp.n_mels as usize;
    let mut p = Planner {
        model,
        out: Vec::new(),
    };

    // Encoder.
    let pe = model
        .shaped(
            "encoder/position_encodings/encodings",
            &[hp.n_audio_ctx as usize, d],
        )?
        .clone();
    p.push(
        "encoder.positional_embedding",
        pe.dims.clone(),
        GgmlType::F32,
        pe,
    );
    p.copy(
        "encoder/conv1/weight",
        "encoder.conv1.weight",
        &[d, n_mels, 3],
    )?;
    let b1 = model.shaped("encoder/conv1/bias", &[d])?.clone();
    p.push("encoder.conv1.bias", vec![d, 1], GgmlType::F32, b1);
    p.copy("encoder/conv2/weight", "encoder.conv2.weight", &[d, d, 3])?;
    let b2 = model.shaped("encoder/conv2/bias", &[d])?.clone();
    p.push("encoder.conv2.bias", vec![d, 1], GgmlType::F32, b2);
    for i in 0..hp.n_audio_layer as usize {
        let src = format!("encoder/layer_{i}");
        let dst = format!("encoder.blocks.{i}");
        p.attention_self(&format!("{src}/self_attention"), &format!("{dst}.attn"), d)?;
        p.mlp(&format!("{src}/ffn"), &format!("{dst}.mlp"), d)?;
    }
    p.layer_norm("encoder/layer_norm", "encoder.ln_post", d)?;

    // Decoder.
    let pe = model
        .shaped(
            "decoder/position_encodings/encodings",
            &[hp.n_text_ctx as usize, d],
        )?
        .clone();
    p.push(
        "decoder.positional_embedding",
        pe.dims.clone(),
        GgmlType::F32,
        pe,
    );
    p.copy(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        &[hp.n_vocab as usize, d],
    )?;
    for i in 0..hp.n_text_layer as usize {
        let src = format!("decoder/layer_{i}");
        let dst = format!("decoder.blocks.{i}");
        p.attention_self(&format!("{src}/self_attention"), &format!("{dst}.attn"), d)?;
        p.attention_cross(&format!("{src}/attention"), &format!("{dst}.cross_attn"), d)?;
        p.mlp(&format!("{src}/ffn"), &format!("{dst}.mlp"), d)?;
    }
    p.layer_norm("decoder/layer_norm", "decoder.ln", d)?;

    // whisper.cpp computes logits with the token embedding; a separate projection would be lost.
    if let Ok(proj) = model.get("decoder/projection/weight") {
        let emb = model.get("decoder/embeddings/weight")?;
        if proj.data != emb.data {
            return Err(ConvertError::Ct2Format {
                path: model.path.to_path_buf(),
                reason: "decoder/projection/weight differs from the token embedding; \
                         whisper.cpp only supports tied output projections"
                    .into(),
            });
        }
    }

    let expected = hp.expected_tensor_count();
    if p.out.len() != expected {
        return Err(ConvertError::Ct2Format {
            path: model.path.to_path_buf(),
            reason: format!(
                "planned {} tensors, whisper.cpp expects {expected}",
                p.out.len()
            ),
        });
    }
    Ok(p.out)
}

// ---------------------------------------------------------------------------------------------
// Auxiliary inputs

/// A row-major f32 matrix.
#[derive(Debug, Clone)]
pub struct MelFilters {
    /// Mel bands.
    pub rows: usize,
    /// FFT bins.
    pub cols: usize,
    /// `rows * cols` weights, row-major.
    pub data: Vec<f32>,
}

/// Reads array `mel_{n_mels}` (f32, `n_mels × 201`) from OpenAI's `mel_filters.npz`.
pub fn read_mel_filters(path: &Path, n_mels: usize) -> Result<MelFilters, ConvertError> {
    let err = |reason: String| ConvertError::MelFilters {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_file(path, MAX_AUX_BYTES)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| err(format!("not a zip archive: {e}")))?;
    let member = format!("mel_{n_mels}.npy");
    let mut npy = Vec::new();
    archive
        .by_name(&member)
        .map_err(|e| err(format!("no `{member}`: {e}")))?
        .take(MAX_AUX_BYTES)
        .read_to_end(&mut npy)
        .map_err(|e| err(format!("reading `{member}`: {e}")))?;

    let array = parse_npy_f32(&npy).map_err(|r| err(format!("`{member}`: {r}")))?;
    let shape = array.shape();
    if shape != [n_mels, MEL_FFT_BINS] {
        return Err(err(format!(
            "`{member}` has shape {shape:?}, expected [{n_mels}, {MEL_FFT_BINS}]"
        )));
    }
    Ok(MelFilters {
        rows: shape[0],
        cols: shape[1],
        // Logical (row-major) order whatever the file's order.
        data: array.iter().copied().collect(),
    })
}

/// Parses a NumPy `.npy` holding a 2-D f32 array (any byte order, C or Fortran order);
/// a wrong dtype, rank or data length is an error.
fn parse_npy_f32(npy: &[u8]) -> Result<Array2<f32>, ReadNpyError> {
    Array2::read_npy(npy)
}

/// Reads a tiktoken BPE file (`base64(token) rank` per line) into token bytes ordered by rank.
/// Ranks must be exactly `0..n`.
pub fn read_tiktoken(path: &Path) -> Result<Vec<Vec<u8>>, ConvertError> {
    let bytes = read_file(path, MAX_AUX_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ConvertError::Tiktoken {
        path: path.to_path_buf(),
        line: 0,
        reason: "not UTF-8 text".into(),
    })?;
    let mut by_rank: Vec<Option<Vec<u8>>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason: String| ConvertError::Tiktoken {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(tok), Some(rank), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err("expected `<base64> <rank>`".into()));
        };
        // OpenAI's multilingual.tiktoken writes its one empty token as a lone `=`, which
        // Python's lenient base64 decoder (the one tiktoken uses) reads as no bytes.
        let token = if tok == "=" {
            Vec::new()
        } else {
            base64_decode(tok).ok_or_else(|| err(format!("bad base64 `{tok}`")))?
        };
        let rank: usize = rank
            .parse()
            .map_err(|_| err(format!("bad rank `{rank}`")))?;
        if rank > (1 << 20) {
            return Err(err(format!("rank {rank} out of range")));
        }
        if by_rank.len() <= rank {
            by_rank.resize(rank + 1, None);
        }
        if by_rank[rank].replace(token).is_some() {
            return Err(err(format!("rank {rank} appears twice")));
        }
    }
    by_rank
        .into_iter()
        .enumerate()
        .map(|(rank, t)| {
            t.ok_or_else(|| ConvertError::Tiktoken {
                path: path.to_path_buf(),
                line: 0,
                reason: format!("rank {rank} missing"),
            })
        })
        .collect()
}

/// Standard base64 (RFC 4648, `+/`, `=` padding required), accepting non-zero bits after
/// the last byte as Python's `base64.b64decode` (which tiktoken uses) does.
const TIKTOKEN_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// One token of a tiktoken file; `None` when it is not base64.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    TIKTOKEN_BASE64.decode(s).ok()
}

// ---------------------------------------------------------------------------------------------
// GGML writer

fn write_ggml(
    path: &Path,
    hp: &HParams,
    mel: &MelFilters,
    vocab: &[Vec<u8>],
    tensors: &[OutTensor<'_>],
) -> Result<(), ConvertError> {
    let io_err = |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io_err)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut body = || -> std::io::Result<()> {
        w.write_all(&GGML_MAGIC.to_le_bytes())?;
        for v in hp.to_array() {
            w.write_all(&v.to_le_bytes())?;
        }
        write_i32(&mut w, mel.rows)?;
        write_i32(&mut w, mel.cols)?;
        for v in &mel.data {
            w.write_all(&v.to_le_bytes())?;
        }
        write_i32(&mut w, vocab.len())?;
        for token in vocab {
            w.write_all(&(token.len() as u32).to_le_bytes())?;
            w.write_all(token)?;
        }
        Ok(())
    };
    body().map_err(io_err)?;

    for t in tensors {
        write_tensor(&mut w, t).map_err(|e| match e {
            TensorWriteError::Io(source) => io_err(source),
            TensorWriteError::Dtype(dtype) => ConvertError::UnsupportedDtype {
                path: path.to_path_buf(),
                name: t.src.name.clone(),
                dtype,
            },
        })?;
    }
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok(())
}

fn write_i32(w: &mut impl Write, v: usize) -> std::io::Result<()> {
    let v = i32::try_from(v).map_err(|_| std::io::Error::other("value exceeds i32"))?;
    w.write_all(&v.to_le_bytes())
}

enum TensorWriteError {
    Io(std::io::Error),
    Dtype(u8),
}

impl From<std::io::Error> for TensorWriteError {
    fn from(e: std::io::Error) -> Self {
        TensorWriteError::Io(e)
    }
}

/// The values of a floating-point tensor as f32; `None` for integer tensors.
fn float_values<'s>(src: &'s Ct2Tensor<'_>) -> Option<impl Iterator<Item = f32> + 's> {
    let dtype = src.dtype;
    if !matches!(dtype, Ct2Dtype::F16 | Ct2Dtype::Bf16 | Ct2Dtype::F32) {
        return None;
    }
    Some(
        src.data
            .chunks_exact(dtype.size())
            .map(move |c| match dtype {
                Ct2Dtype::F16 => f16::from_le_bytes([c[0], c[1]]).to_f32(),
                Ct2Dtype::Bf16 => bf16::from_le_bytes([c[0], c[1]]).to_f32(),
                _ => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            }),
    )
}

fn write_tensor(w: &mut impl Write, t: &OutTensor<'_>) -> Result<(), TensorWriteError> {
    write_i32(w, t.shape.len())?;
    write_i32(w, t.name.len())?;
    let type_id = t.quant.map_or(t.ty as i32, QuantType::ggml_type_id);
    w.write_all(&type_id.to_le_bytes())?;
    for &d in t.shape.iter().rev() {
        write_i32(w, d)?;
    }
    w.write_all(t.name.as_bytes())?;

    let src = &t.src;
    if let Some(q) = t.quant {
        let values: Vec<f32> = float_values(src)
            .ok_or(TensorWriteError::Dtype(src.dtype.id()))?
            .collect();
        let mut buf = Vec::new();
        // Rows are whole blocks (checked in `quantize_matrices`), so blocks never span rows.
        q.quantize_into(&values, &mut buf);
        w.write_all(&buf)?;
        return Ok(());
    }
    match (src.dtype, t.ty) {
        // The common case for f16 CTranslate2 models: bytes are already what ggml wants.
        (Ct2Dtype::F16, GgmlType::F16) | (Ct2Dtype::F32, GgmlType::F32) => {
            w.write_all(src.data)?;
        }
        (Ct2Dtype::F16 | Ct2Dtype::Bf16 | Ct2Dtype::F32, _) => {
            let mut buf = Vec::with_capacity(src.data.len() * 2);
            let values = float_values(src).ok_or(TensorWriteError::Dtype(src.dtype.id()))?;
            match t.ty {
                GgmlType::F32 => values.for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
                GgmlType::F16 => {
                    values.for_each(|v| buf.extend_from_slice(&f16::from_f32(v).to_le_bytes()))
                }
            }
            w.write_all(&buf)?;
        }
        (other, _) => return Err(TensorWriteError::Dtype(other.id())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_values() {
        assert_eq!(base64_decode("IQ==").as_deref(), Some(&b"!"[..]));
        assert_eq!(base64_decode("IGdhemVk").as_deref(), Some(&b" gazed"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YWI"), None);
        assert_eq!(base64_decode("Y=Fi"), None);
        assert_eq!(base64_decode("YW!="), None);
    }

    #[test]
    fn tiktoken_ranks_and_the_empty_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tiktoken");
        // Out of order on purpose; rank 2 is the empty token as multilingual.tiktoken writes it.
        std::fs::write(&path, "YWI= 1\nIQ== 0\n= 2\n").unwrap();
        let toks = read_tiktoken(&path).unwrap();
        assert_eq!(toks, vec![b"!".to_vec(), b"ab".to_vec(), Vec::new()]);

        std::fs::write(&path, "IQ== 0\n== 1\n").unwrap();
        let e = read_tiktoken(&path).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("bad base64 `==`"), "{e}");
        std::fs::write(&path, "IQ== 0\nYWI= 2\n").unwrap();
        let e = read_tiktoken(&path).unwrap_err().to_string();
        assert!(e.contains("rank 1 missing"), "{e}");
    }

    #[test]
    fn npy_header_and_data() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        let pad = 64 - (10 + header.len() + 1) % 64;
        let full = format!("{header}{}\n", " ".repeat(pad));
        npy.extend_from_slice(&(full.len() as u16).to_le_bytes());
        npy.extend_from_slice(full.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            npy.extend_from_slice(&v.to_le_bytes());
        }
        let array = parse_npy_f32(&npy).expect("valid npy");
        assert_eq!(array.shape(), [2, 3]);
        assert_eq!(array[[1, 2]], 6.5);
        assert!(parse_npy_f32(&npy[..npy.len() - 1]).is_err());
        assert!(parse_npy_f32(b"\x93NUMPY\x01").is_err());
        // f64 data is refused, not reinterpreted.
        let mut f64_npy = npy.clone();
        let at = f64_npy.windows(3).position(|w| w == b"<f4").unwrap();
        f64_npy[at + 2] = b'8';
        assert!(matches!(
            parse_npy_f32(&f64_npy),
            Err(ReadNpyError::WrongDescriptor(_))
        ));
    }
}
