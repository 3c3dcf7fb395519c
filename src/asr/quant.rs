//! GGML block quantisation of weight matrices (q8_0, q5_0, q5_1), for the converter.
//!
//! Step for step the reference quantisers of the ggml vendored by whisper-rs-sys 0.15
//! (`ggml/src/ggml-quants.c`, `quantize_row_q*_ref`, the ones ggml documents as "for
//! deterministic creation of model files"), with the block layouts of `ggml-common.h`.
//! Every block covers 32 consecutive values of one row (rows are the fastest-varying
//! dimension in ggml, so a matrix row's length must be a multiple of 32):
//!
//! | type | ggml id | bytes | layout |
//! |---|---|---|---|
//! | q8_0 | 8 | 34 | f16 scale `d`, 32 × i8 `q`; value = `d·q` |
//! | q5_0 | 6 | 22 | f16 `d`, u32 `qh` (bit 5 of each quant), 16 bytes of low nibbles; value = `d·(q − 16)` |
//! | q5_1 | 7 | 24 | f16 `d`, f16 min `m`, u32 `qh`, 16 bytes of low nibbles; value = `d·q + m` |
//!
//! In q5 blocks byte `j` of the nibbles holds value `j` in its low half and value `j + 16`
//! in its high half; bit `j` of `qh` is the fifth bit of value `j`.
//!
//! Which tensors whisper.cpp expects quantised is fixed by its loader (`whisper.cpp`,
//! `whisper_model_load`): the 2-D linear weights and the token embedding take the file's
//! weight type; convolutions stay f16; biases, norms and positional embeddings stay f32.

use half::f16;

/// Values per block, for all three types.
pub const BLOCK: usize = 32;

/// ggml's `GGML_QNT_VERSION`: whisper.cpp's `quantize` tool writes the header's `ftype` as
/// `GGML_QNT_VERSION * 1000 + ftype` and the loader takes it modulo 1000.
pub const QNT_VERSION: i32 = 2;

/// A quantised weight type the converter can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    /// 8-bit, one f16 scale per block.
    Q8_0,
    /// 5-bit symmetric, one f16 scale per block.
    Q5_0,
    /// 5-bit with an f16 scale and an f16 minimum per block.
    Q5_1,
}

impl QuantType {
    /// All types, in the order the CLI lists them.
    pub const ALL: [QuantType; 3] = [QuantType::Q8_0, QuantType::Q5_0, QuantType::Q5_1];

    /// ggml's `ggml_type` id, written in each tensor header.
    pub fn ggml_type_id(self) -> i32 {
        match self {
            QuantType::Q5_0 => 6,
            QuantType::Q5_1 => 7,
            QuantType::Q8_0 => 8,
        }
    }

    /// ggml's `ggml_ftype` (`GGML_FTYPE_MOSTLY_*`), before the version offset.
    pub fn ggml_ftype(self) -> i32 {
        match self {
            QuantType::Q8_0 => 7,
            QuantType::Q5_0 => 8,
            QuantType::Q5_1 => 9,
        }
    }

    /// The header's `ftype` as whisper.cpp's `quantize` writes it.
    pub fn header_ftype(self) -> i32 {
        QNT_VERSION * 1000 + self.ggml_ftype()
    }

    /// Bytes of one block of [`BLOCK`] values.
    pub fn block_bytes(self) -> usize {
        match self {
            QuantType::Q8_0 => 2 + BLOCK,
            QuantType::Q5_0 => 2 + 4 + BLOCK / 2,
            QuantType::Q5_1 => 2 + 2 + 4 + BLOCK / 2,
        }
    }

    /// The name used on the command line and in file names (`q8_0`).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "q8_0",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
        }
    }

    /// The type with ggml type id `id`, if it is one of these.
    pub fn from_ggml_type_id(id: i32) -> Option<Self> {
        QuantType::ALL.into_iter().find(|q| q.ggml_type_id() == id)
    }

    /// Appends the blocks of `values` (a multiple of [`BLOCK`] long) to `out`.
    ///
    /// # Panics
    /// If `values.len()` is not a multiple of [`BLOCK`]; the converter checks row lengths
    /// before it gets here.
    pub fn quantize_into(self, values: &[f32], out: &mut Vec<u8>) {
        assert!(
            values.len().is_multiple_of(BLOCK),
            "{} values are not whole blocks of {BLOCK}",
            values.len()
        );
        out.reserve(values.len() / BLOCK * self.block_bytes());
        for block in values.chunks_exact(BLOCK) {
            let block: &[f32; BLOCK] = block.try_into().expect("chunks_exact yields BLOCK");
            match self {
                QuantType::Q8_0 => q8_0_block(block, out),
                QuantType::Q5_0 => q5_0_block(block, out),
                QuantType::Q5_1 => q5_1_block(block, out),
            }
        }
    }
}

impl std::str::FromStr for QuantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        QuantType::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| format!("unknown quantisation `{s}`: expected q8_0, q5_0 or q5_1"))
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `quantize_row_q8_0_ref`: `d = max|x| / 127`, `q = round(x / d)` (half away from zero).
fn q8_0_block(x: &[f32; BLOCK], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

/// Packs 32 five-bit quants: low nibbles two to a byte, fifth bits into `qh`.
fn push_q5(q: &[u8; BLOCK], out: &mut Vec<u8>) {
    let half = BLOCK / 2;
    let mut qh = 0u32;
    for (j, &v) in q.iter().enumerate() {
        qh |= u32::from((v & 0x10) >> 4) << j;
    }
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend((0..half).map(|j| (q[j] & 0x0f) | ((q[j + half] & 0x0f) << 4)));
}

/// `quantize_row_q5_0_ref`: `d = -m / 16` where `m` is the value of largest magnitude (with
/// its sign), `q = min(31, trunc(x / d + 16.5))`.
fn q5_0_block(x: &[f32; BLOCK], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    // `as i8` truncates toward zero as C's `(int8_t)` does for these in-range values.
    let q = x.map(|v| ((v * id + 16.5) as i8).min(31) as u8);
    push_q5(&q, out);
}

/// `quantize_row_q5_1_ref`: `d = (max − min) / 31`, `m = min`, `q = trunc((x − min) / d + 0.5)`.
fn q5_1_block(x: &[f32; BLOCK], out: &mut Vec<u8>) {
    let min = x.iter().copied().fold(f32::MAX, f32::min);
    let max = x.iter().copied().fold(-f32::MAX, f32::max);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
    let q = x.map(|v| ((v - min) * id + 0.5) as u8);
    push_q5(&q, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values `k / 4` for `k = -16..16`: exact in f16 and easy to quantise by hand.
    fn ramp() -> [f32; BLOCK] {
        std::array::from_fn(|i| (i as f32 - 16.0) / 4.0)
    }

    #[test]
    fn q8_0_block_by_hand() {
        // x[0] = -127/32 is the largest magnitude, so d = 1/32 exactly and q = 32·x: -127,
        // then 8·k for the ramp's other values k/4 (k = -15..16).
        let mut x = ramp();
        x[0] = -127.0 / 32.0;
        let mut out = Vec::new();
        QuantType::Q8_0.quantize_into(&x, &mut out);
        assert_eq!(out.len(), 34);
        assert_eq!(&out[..2], &f16::from_f32(1.0 / 32.0).to_le_bytes());
        let expected: [i8; 32] = [
            -127, -120, -112, -104, -96, -88, -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0,
            8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120,
        ];
        let got: Vec<i8> = out[2..].iter().map(|&b| b as i8).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn q8_0_rounds_half_away_from_zero() {
        // d = 1/32 again; 0.5/32 and -1.5/32 sit exactly between two steps.
        let mut x = [0.0f32; 32];
        x[0] = 127.0 / 32.0;
        x[1] = 0.5 / 32.0;
        x[2] = -1.5 / 32.0;
        let mut out = Vec::new();
        QuantType::Q8_0.quantize_into(&x, &mut out);
        assert_eq!(&out[2..5], &[127u8, 1, (-2i8) as u8]);
    }

    #[test]
    fn q8_0_zero_block_has_zero_scale() {
        let mut out = Vec::new();
        QuantType::Q8_0.quantize_into(&[0.0; 32], &mut out);
        assert_eq!(out, vec![0u8; 34]);
    }

    #[test]
    fn q5_0_block_by_hand() {
        // Largest magnitude is x[0] = -4.0, so d = -4 / -16 = 0.25 and q = trunc(4k/4 + 16.5)
        // = k + 16 for k = -16..16: exactly 0..=31.
        let x = ramp();
        let mut out = Vec::new();
        QuantType::Q5_0.quantize_into(&x, &mut out);
        assert_eq!(out.len(), 22);
        assert_eq!(&out[..2], &f16::from_f32(0.25).to_le_bytes());
        // q = 0..=31: values 16..=31 (the second half) have bit 4 set.
        assert_eq!(&out[2..6], &0xffff_0000u32.to_le_bytes());
        // Byte j: low nibble q[j] = j, high nibble q[j+16] & 15 = j.
        let nibbles: Vec<u8> = (0..16u8).map(|j| j | (j << 4)).collect();
        assert_eq!(&out[6..], &nibbles[..]);
    }

    #[test]
    fn q5_1_block_by_hand() {
        // min = -4, max = 3.75, d = 7.75 / 31 = 0.25, q = trunc((x + 4)·4 + 0.5) = k + 16.
        let x = ramp();
        let mut out = Vec::new();
        QuantType::Q5_1.quantize_into(&x, &mut out);
        assert_eq!(out.len(), 24);
        assert_eq!(&out[..2], &f16::from_f32(0.25).to_le_bytes());
        assert_eq!(&out[2..4], &f16::from_f32(-4.0).to_le_bytes());
        assert_eq!(&out[4..8], &0xffff_0000u32.to_le_bytes());
        let nibbles: Vec<u8> = (0..16u8).map(|j| j | (j << 4)).collect();
        assert_eq!(&out[8..], &nibbles[..]);
    }

    #[test]
    fn names_ids_and_header_ftype() {
        for q in QuantType::ALL {
            assert_eq!(q.name().parse::<QuantType>(), Ok(q));
            assert_eq!(QuantType::from_ggml_type_id(q.ggml_type_id()), Some(q));
        }
        assert_eq!(QuantType::Q8_0.header_ftype(), 2007);
        assert!("q4_0".parse::<QuantType>().is_err());
    }
}
