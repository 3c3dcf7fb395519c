//! ITU-T G.711 companding: μ-law (North America, Japan) and A-law (Europe) telephony codecs.
//!
//! Decoding is a 256-entry table built at compile time; encoding follows the reference
//! segment search of the ITU-T G.711 / Sun `g711.c` code, scaled to 16-bit linear PCM.
//! Decoded values are the reference ones: μ-law spans ±32124, A-law ±32256.

/// μ-law encoder bias (added to the magnitude before the segment search), 16-bit scale.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude the μ-law encoder represents before clipping, 16-bit scale.
const ULAW_CLIP: i32 = 32635;

const fn ulaw_to_linear(code: u8) -> i16 {
    // Codes are transmitted with all bits inverted.
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_to_linear(code: u8) -> i16 {
    // Even bits are inverted on the wire.
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    table
}

/// μ-law code → 16-bit linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build_table(false);
/// A-law code → 16-bit linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build_table(true);

/// Decodes one μ-law byte to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decodes one A-law byte to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Encodes a 16-bit linear sample as μ-law (magnitudes above 32635 clip).
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment = position of the highest set bit above bit 7 (0..=7); pcm < 0x8000 here.
    let seg = (31 - (pcm as u32).leading_zeros()).saturating_sub(7).min(7);
    let uval = ((seg << 4) as i32 | ((pcm >> (seg + 3)) & 0x0F)) as u8;
    uval ^ mask
}

/// Encodes a 16-bit linear sample as A-law (13-bit precision; magnitudes above 32767 clip).
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment ends of the 13-bit magnitude: 0x1F, 0x3F, ..., 0xFFF.
    let seg = (32 - (pcm as u32).leading_zeros()).saturating_sub(5);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mant = if seg < 2 { pcm >> 1 } else { pcm >> seg } & 0x0F;
    (((seg << 4) as i32 | mant) as u8) ^ mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(ulaw_decode(0xF0), 120);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(-1), 0x7F);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn round_trip_all_codes() {
        for code in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(code));
            // 0x7F is "negative zero", which re-encodes as positive zero.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(back, expected, "μ-law code {code:#04x}");
            assert_eq!(
                alaw_encode(alaw_decode(code)),
                code,
                "A-law code {code:#04x}"
            );
        }
    }

    #[test]
    fn decode_tables_are_monotonic_per_sign() {
        // Within each sign half, larger magnitude codes map to larger magnitudes.
        let mut mu: Vec<i16> = ULAW_TO_LINEAR.to_vec();
        mu.sort_unstable();
        mu.dedup();
        assert_eq!(mu.len(), 255); // two zeros
        let mut a: Vec<i16> = ALAW_TO_LINEAR.to_vec();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 256);
    }

    #[test]
    fn quantisation_error_is_bounded_over_all_inputs() {
        for x in i16::MIN..=i16::MAX {
            let mu = ulaw_decode(ulaw_encode(x)) as i32;
            let al = alaw_decode(alaw_encode(x)) as i32;
            let xi = x as i32;
            // Step size grows with magnitude: the error stays below half a step, about
            // 1/32 of the value, plus the smallest step.
            let tol = xi.abs() / 32 + 16;
            assert!((mu - xi).abs() <= tol, "μ-law {x} -> {mu}");
            assert!((al - xi).abs() <= tol, "A-law {x} -> {al}");
            assert!(mu * xi >= 0 && al * xi >= 0, "sign kept for {x}");
        }
    }
}
