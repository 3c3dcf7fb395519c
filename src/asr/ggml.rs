//! The whisper.cpp GGML model file: layout constants and a small reader.
//!
//! Layout (all integers little-endian `i32` unless said otherwise):
//! magic `0x67676d6c`, eleven hyper-parameters ([`HParams`]), the mel filter bank
//! (rows, cols, `rows * cols` f32), the vocabulary (count, then for each token a `u32` byte
//! length and the bytes), then tensors until end of file, each as
//! (n_dims, name length, type, dims fastest-first, name bytes, data).
//!
//! The reader exists to check what the converter wrote (tests, `model info`-style tools); it
//! skips over tensor data rather than loading it. It reads f32/f16 tensors only and refuses
//! a quantised file (`callmood model convert --quantize`) with an error that says so.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::quant::QuantType;

/// `ggml` in ASCII, read as a little-endian `u32`.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Upper bound on a tensor name, bytes: longer means a corrupt file, not a real name.
const MAX_NAME_LEN: usize = 256;
/// Upper bound on one vocabulary entry, bytes.
const MAX_TOKEN_LEN: usize = 1024;
/// Upper bound on tensor rank in a GGML file.
const MAX_DIMS: usize = 4;

/// Element type of a tensor in the file (ggml's `ggml_type` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// `GGML_TYPE_F32`, 4 bytes per element.
    F32 = 0,
    /// `GGML_TYPE_F16`, 2 bytes per element.
    F16 = 1,
}

impl GgmlType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
        }
    }

    fn from_id(id: i32) -> Option<Self> {
        match id {
            0 => Some(GgmlType::F32),
            1 => Some(GgmlType::F16),
            _ => None,
        }
    }
}

/// The eleven hyper-parameters at the head of a whisper.cpp model, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    /// Vocabulary size of the decoder (rows of the token embedding), 51864 for `*.en`.
    pub n_vocab: i32,
    /// Encoder positions (1500 for 30 s).
    pub n_audio_ctx: i32,
    /// Encoder width.
    pub n_audio_state: i32,
    /// Encoder attention heads.
    pub n_audio_head: i32,
    /// Encoder blocks.
    pub n_audio_layer: i32,
    /// Decoder positions (448).
    pub n_text_ctx: i32,
    /// Decoder width.
    pub n_text_state: i32,
    /// Decoder attention heads.
    pub n_text_head: i32,
    /// Decoder blocks.
    pub n_text_layer: i32,
    /// Mel bands of the input spectrogram.
    pub n_mels: i32,
    /// Weight type of the matrices: 0 = f32, 1 = f16; quantised files carry
    /// `1000 * GGML_QNT_VERSION + GGML_FTYPE_MOSTLY_*` ([`super::quant::QuantType::header_ftype`]).
    pub ftype: i32,
}

impl HParams {
    /// The values in file order.
    pub fn to_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// Builds from values in file order.
    pub fn from_array(v: [i32; 11]) -> Self {
        HParams {
            n_vocab: v[0],
            n_audio_ctx: v[1],
            n_audio_state: v[2],
            n_audio_head: v[3],
            n_audio_layer: v[4],
            n_text_ctx: v[5],
            n_text_state: v[6],
            n_text_head: v[7],
            n_text_layer: v[8],
            n_mels: v[9],
            ftype: v[10],
        }
    }

    /// Number of tensors whisper.cpp expects for these hyper-parameters: 7 encoder tensors
    /// outside the blocks (positions, 2 convs with bias, final norm), 15 per encoder block,
    /// 4 decoder tensors outside the blocks, 24 per decoder block (self + cross attention).
    pub fn expected_tensor_count(&self) -> usize {
        let enc = self.n_audio_layer.max(0) as usize;
        let dec = self.n_text_layer.max(0) as usize;
        7 + 15 * enc + 4 + 24 * dec
    }
}

/// One tensor's header as found in a GGML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgmlTensorInfo {
    /// PyTorch-style name, e.g. `encoder.blocks.0.attn.query.weight`.
    pub name: String,
    /// Dimensions in ggml order (fastest-varying first), as stored.
    pub ne: Vec<usize>,
    /// Element type.
    pub ty: GgmlType,
    /// Byte offset of the tensor data in the file.
    pub data_offset: u64,
}

impl GgmlTensorInfo {
    /// Dimensions in PyTorch order (slowest-varying first).
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().copied().collect()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.ne.iter().product()
    }
}

/// What a GGML model file holds, without the tensor data.
#[derive(Debug, Clone)]
pub struct GgmlSummary {
    /// Hyper-parameters.
    pub hparams: HParams,
    /// Mel filter bank rows (bands).
    pub mel_rows: usize,
    /// Mel filter bank columns (FFT bins).
    pub mel_cols: usize,
    /// The vocabulary's token bytes, in rank order.
    pub vocab: Vec<Vec<u8>>,
    /// Tensor headers in file order.
    pub tensors: Vec<GgmlTensorInfo>,
}

impl GgmlSummary {
    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&GgmlTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// A GGML file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgmlError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not follow the GGML layout.
    #[error("{path}: not a whisper.cpp GGML file at byte {offset}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Byte offset where the problem was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

/// Reads the header, filter bank shape, vocabulary and tensor headers of a GGML model file.
pub fn read_ggml_summary(path: &Path) -> Result<GgmlSummary, GgmlError> {
    let io_err = |source| GgmlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut r = Reader {
        inner: BufReader::new(file),
        pos: 0,
        len: file_len,
        path,
    };

    let magic = r.u32("magic")?;
    if magic != GGML_MAGIC {
        return Err(r.format(format!("magic {magic:#010x}, expected {GGML_MAGIC:#010x}")));
    }
    let mut hp = [0i32; 11];
    for v in hp.iter_mut() {
        *v = r.i32("hyper-parameter")?;
    }
    let hparams = HParams::from_array(hp);

    let mel_rows = r.count("mel rows", 1 << 12)?;
    let mel_cols = r.count("mel cols", 1 << 14)?;
    r.skip((mel_rows * mel_cols * 4) as u64, "mel filter data")?;

    let n_vocab = r.count("vocabulary size", 1 << 20)?;
    let mut vocab = Vec::with_capacity(n_vocab);
    for _ in 0..n_vocab {
        let len = r.u32("token length")? as usize;
        if len > MAX_TOKEN_LEN {
            return Err(r.format(format!("token of {len} bytes")));
        }
        vocab.push(r.bytes(len, "token bytes")?);
    }

    let mut tensors = Vec::new();
    while r.pos < r.len {
        let n_dims = r.count("tensor rank", MAX_DIMS)?;
        let name_len = r.count("tensor name length", MAX_NAME_LEN)?;
        let ty_id = r.i32("tensor type")?;
        let ty =
            GgmlType::from_id(ty_id).ok_or_else(|| match QuantType::from_ggml_type_id(ty_id) {
                // whisper.cpp loads such files; this reader, and the voice emotion encoder built
                // on it, read f32/f16 only, so its fingerprint is never computed on other values.
                Some(q) => r.format(format!(
                    "tensor type {ty_id} is {q}-quantised weights; this reader (and the voice \
                 emotion encoder, which must run on the weights it was trained with) needs \
                 the f16 model file made by `callmood model convert` without --quantize"
                )),
                None => r.format(format!("unsupported tensor type {ty_id}")),
            })?;
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            ne.push(r.count("tensor dim", 1 << 24)?);
        }
        let name_bytes = r.bytes(name_len, "tensor name")?;
        let name = String::from_utf8(name_bytes)
            .map_err(|_| r.format("tensor name is not UTF-8".into()))?;
        let data_offset = r.pos;
        let n_bytes = ne.iter().product::<usize>() as u64 * ty.size() as u64;
        r.skip(n_bytes, "tensor data")?;
        tensors.push(GgmlTensorInfo {
            name,
            ne,
            ty,
            data_offset,
        });
    }

    Ok(GgmlSummary {
        hparams,
        mel_rows,
        mel_cols,
        vocab,
        tensors,
    })
}

/// Reads one tensor's data as f32 (converting from f16 where stored so).
pub fn read_tensor_f32(path: &Path, info: &GgmlTensorInfo) -> Result<Vec<f32>, GgmlError> {
    let io_err = |source| GgmlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    file.seek(SeekFrom::Start(info.data_offset))
        .map_err(io_err)?;
    let mut buf = vec![0u8; info.n_elements() * info.ty.size()];
    file.read_exact(&mut buf).map_err(io_err)?;
    Ok(match info.ty {
        GgmlType::F32 => buf
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 => buf
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    })
}

struct Reader<'p> {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'p Path,
}

impl Reader<'_> {
    fn format(&self, reason: String) -> GgmlError {
        GgmlError::Format {
            path: self.path.to_path_buf(),
            offset: self.pos,
            reason,
        }
    }

    fn need(&self, n: u64, what: &str) -> Result<(), GgmlError> {
        if self.len.saturating_sub(self.pos) < n {
            return Err(self.format(format!("file ends inside {what}")));
        }
        Ok(())
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, GgmlError> {
        self.need(n as u64, what)?;
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|source| GgmlError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgmlError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, GgmlError> {
        Ok(self.u32(what)? as i32)
    }

    /// A non-negative `i32` no larger than `max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, GgmlError> {
        let v = self.i32(what)?;
        match usize::try_from(v) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.format(format!("{what} {v} out of range 0..={max}"))),
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgmlError> {
        self.need(n, what)?;
        let delta = i64::try_from(n).map_err(|_| self.format(format!("{what} too large")))?;
        self.inner
            .seek_relative(delta)
            .map_err(|source| GgmlError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with an empty filter bank and vocabulary and one 32-value tensor of type `ty`.
    fn one_tensor_file(ty: i32, data_len: usize) -> Vec<u8> {
        let mut b = GGML_MAGIC.to_le_bytes().to_vec();
        for v in [0i32; 11].into_iter().chain([0, 0, 0]) {
            b.extend_from_slice(&v.to_le_bytes()); // hparams, mel rows/cols, vocab size
        }
        let name = b"w";
        for v in [1, name.len() as i32, ty, 32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(name);
        b.extend(std::iter::repeat_n(0u8, data_len));
        b
    }

    #[test]
    fn quantised_tensors_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, one_tensor_file(1, 64)).unwrap();
        let s = read_ggml_summary(&path).expect("an f16 tensor reads");
        assert_eq!(s.tensors[0].ty, GgmlType::F16);

        // One q8_0 block: 34 bytes.
        std::fs::write(&path, one_tensor_file(8, 34)).unwrap();
        let e = read_ggml_summary(&path).unwrap_err().to_string();
        assert!(
            e.contains("q8_0-quantised") && e.contains("f16 model file"),
            "{e}"
        );
        std::fs::write(&path, one_tensor_file(2, 18)).unwrap();
        let e = read_ggml_summary(&path).unwrap_err().to_string();
        assert!(e.contains("unsupported tensor type 2"), "{e}");
    }
}
