//! ITU-T G.711: 8-bit mu-law (PCMU) and A-law (PCMA) samples to and from 16-bit linear PCM.

/// Decodes one mu-law byte to a 16-bit linear sample.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes a 16-bit linear sample as mu-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    if s > CLIP {
        s = CLIP;
    }
    s += BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// Encodes a 16-bit linear sample as A-law.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    if s > 32767 {
        s = 32767;
    }
    let byte = if s < 256 {
        s >> 4
    } else {
        let mut exponent = 1;
        while exponent < 7 && s >= (256 << exponent) {
            exponent += 1;
        }
        (exponent << 4) | ((s >> (exponent + 3)) & 0x0f)
    };
    ((sign | byte) ^ 0x55) as u8
}

/// Mu-law decoding table, built at compile time.
pub static ULAW_TO_LINEAR: [i16; 256] = table(false);
/// A-law decoding table, built at compile time.
pub static ALAW_TO_LINEAR: [i16; 256] = table(true);

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_from_the_standard() {
        // mu-law: 0xff and 0x7f are the two zeros, 0x00 and 0x80 the extremes
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(0), 0xff);
        // A-law: 0xd5 and 0x55 are the smallest magnitudes, 0xaa and 0x2a the extremes
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(linear_to_alaw(0), 0xd5);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for b in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(b));
            // the two mu-law zeros decode to the same sample
            assert!(
                u == b || (b == 0x7f && u == 0xff),
                "mu-law {b:#04x} -> {u:#04x}"
            );
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "a-law {b:#04x}");
            assert_eq!(ULAW_TO_LINEAR[b as usize], ulaw_to_linear(b));
            assert_eq!(ALAW_TO_LINEAR[b as usize], alaw_to_linear(b));
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close() {
        let mut prev = i32::MIN;
        for s in (-32768..=32767).step_by(7) {
            let s = s as i16;
            let u = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let a = alaw_to_linear(linear_to_alaw(s)) as i32;
            assert!(u >= prev, "mu-law not monotonic at {s}");
            prev = u;
            let tolerance = (i32::from(s).abs() / 16).max(16);
            assert!((u - i32::from(s)).abs() <= tolerance, "mu-law {s} -> {u}");
            assert!(
                (a - i32::from(s)).abs() <= tolerance.max(32),
                "a-law {s} -> {a}"
            );
        }
    }
}
