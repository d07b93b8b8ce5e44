//! One block of one channel: is it a keypad tone, and which? Goertzel filters at the eight DTMF
//! frequencies, then the acceptance tests of ITU-T Q.24 in spirit: both tones above the minimum
//! level, twist within limits, each tone the clear peak of its group, the two tones holding nearly
//! all the block's energy (speech and music spread theirs), and no strong second harmonic of the
//! high-group tone (a voice or an instrument has one; a keypad does not). A tone begins only
//! when two blocks in a row carry the same digit and each tone's phase moved between them as its
//! nominal frequency's would (within 2.5 %, at most 30 Hz): a keypad's oscillators are within
//! 1.5 %, while two notes that share one filter (a cluster chord, a voice's neighbouring
//! harmonics) beat, and their joint phase wanders.
//!
//! Levels are in dBm0: 0 dBm0 is a sine of peak [`DBM0_PEAK`] in 16-bit linear PCM.

use super::Digit;

/// Peak amplitude, in 16-bit linear PCM, of a 0 dBm0 sine. G.711's digital milliwatt decodes to a
/// sine of peak 22 650 (mu-law) or 22 820 (A-law); this sits between them (within 0.04 dB of each).
pub const DBM0_PEAK: f32 = 22_700.0;

/// The low (row) group, in Hz.
pub const LOW_GROUP: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// The high (column) group, in Hz.
pub const HIGH_GROUP: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The analysis block, in seconds: 102 samples at 8 kHz (12.75 ms). Its bins are 78 Hz apart, so
/// neighbouring tones of a group (73 to 89 Hz apart) are told apart, and a 40 ms tone always covers
/// two whole blocks, however it falls.
pub const BLOCK_SECONDS: f64 = 0.012_75;

/// Reverse twist accepted (high group stronger than low), in dB: Q.24 allows 4 dB; half a dB of
/// tolerance covers the estimate's own error.
const REVERSE_TWIST_DB: f32 = 4.5;
/// Normal twist accepted (high group weaker than low), in dB: Q.24 allows 8 dB, plus the same
/// tolerance.
const NORMAL_TWIST_DB: f32 = 8.5;
/// How far each tone must stand above every other tone of its group, in dB.
const RELATIVE_PEAK_DB: f32 = 8.0;
/// The share of the block's energy the two tones must hold together. A keypad tone holds nearly all
/// of it (0.98 with noise 17 dB below, less the other tone's leakage through the rectangular
/// window's side lobes, up to 20 % either way, and 15 % for a tone 1.5 % off); voiced speech spreads its energy over many harmonics and
/// formants, and an instrument's note over its overtones.
const TONE_TO_TOTAL: f32 = 0.75;
/// Where the flank filters sit either side of each tone, as a share of its frequency: a tone is
/// accepted only if its own filter hears it at least as well as both flanks, so within 2 % (Q.24:
/// accept within 1.5 %, reject beyond 3.5 %). This test runs on the block under a Hann window, so
/// the other group's tone, which leaks through a rectangular window's side lobes by up to ±20 % of
/// a tone's energy, does not tip it.
const FLANK: f32 = 0.04;
/// How far below the high-group tone its second harmonic must be, in dB.
const SECOND_HARMONIC_DB: f32 = 12.0;
/// The largest frequency error accepted, as a share of the nominal frequency and in Hz (the
/// phase test measures errors up to half a bin, 39 Hz, without ambiguity).
const FREQUENCY_TOLERANCE: f32 = 0.025;
const FREQUENCY_TOLERANCE_HZ: f32 = 30.0;

fn db(x: f32) -> f32 {
    10f32.powf(x / 10.0)
}

/// A Goertzel filter's coefficient at `hz` for `rate` samples per second.
fn coefficient(hz: f32, rate: u32) -> f32 {
    2.0 * (std::f32::consts::TAU * hz / rate as f32).cos()
}

/// The fixed parts of the analysis at one sample rate and sensitivity.
#[derive(Debug, Clone)]
pub(super) struct Analysis {
    /// Samples per block.
    pub(super) block: usize,
    /// Coefficients of the eight tones: four low, four high.
    coefficients: [f32; 8],
    /// Coefficients at twice each high-group tone (for the harmonic test), `None` past Nyquist.
    harmonics: [Option<f32>; 4],
    /// Coefficients of each tone's two flanks, below and above it.
    flanks: [(f32, f32); 8],
    /// A Hann window over one block, for the flank test.
    window: Vec<f32>,
    /// For each tone: `(cos w, sin w)` of its angular frequency a sample, for its phase.
    rotations: [(f32, f32); 8],
    /// For each tone: the phase a tone at exactly its frequency advances by from one block to the
    /// next, and the most a real keypad tone's advance may differ from it (radians).
    advance: [(f32, f32); 8],
    /// The least energy (in the block's units, see [`Analysis::energy_of`]) a tone must have.
    min_tone_energy: f32,
}

/// A block that passed every test of one block: its digit and the phase of each of its two tones.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) digit: Digit,
    row: usize,
    col: usize,
    /// The phases of the row and column tones, in radians.
    phases: (f32, f32),
}

impl Analysis {
    pub(super) fn new(rate: u32, min_level_dbm0: f32) -> Self {
        let block = ((f64::from(rate) * BLOCK_SECONDS).round() as usize).max(1);
        let mut coefficients = [0.0; 8];
        for (c, hz) in coefficients
            .iter_mut()
            .zip(LOW_GROUP.iter().chain(HIGH_GROUP.iter()))
        {
            *c = coefficient(*hz, rate);
        }
        let harmonics = HIGH_GROUP
            .map(|hz| (2.0 * hz < rate as f32 / 2.0).then(|| coefficient(2.0 * hz, rate)));
        let peak = DBM0_PEAK * 10f32.powf(min_level_dbm0 / 20.0);
        let flanks = {
            let mut f = [(0.0, 0.0); 8];
            for (k, hz) in LOW_GROUP.iter().chain(HIGH_GROUP.iter()).enumerate() {
                f[k] = (
                    coefficient(hz * (1.0 - FLANK), rate),
                    coefficient(hz * (1.0 + FLANK), rate),
                );
            }
            f
        };
        let mut rotations = [(0.0, 0.0); 8];
        let mut advance = [(0.0, 0.0); 8];
        for (k, hz) in LOW_GROUP.iter().chain(HIGH_GROUP.iter()).enumerate() {
            let w = f64::from(*hz) * std::f64::consts::TAU / f64::from(rate);
            rotations[k] = (w.cos() as f32, w.sin() as f32);
            let tolerance = (hz * FREQUENCY_TOLERANCE).min(FREQUENCY_TOLERANCE_HZ);
            advance[k] = (
                (w * block as f64).rem_euclid(std::f64::consts::TAU) as f32,
                std::f32::consts::TAU * tolerance * block as f32 / rate as f32,
            );
        }
        Self {
            block,
            coefficients,
            harmonics,
            flanks,
            window: (0..block)
                .map(|i| {
                    let x = std::f32::consts::TAU * (i as f32 + 0.5) / block as f32;
                    0.5 - 0.5 * x.cos()
                })
                .collect(),
            rotations,
            advance,
            min_tone_energy: peak * peak * block as f32 / 2.0,
        }
    }

    /// The energy a sine contributes to a whole block, from the squared magnitude of its Goertzel
    /// output: a sine of peak `a` gives `a * a * N / 2`, the same as the sum of its squared samples,
    /// so tone energies and the block's total energy compare directly.
    fn energy_of(&self, squared_magnitude: f32) -> f32 {
        squared_magnitude * 2.0 / self.block as f32
    }

    /// The digit this block carries, if it passes every test of one block.
    pub(super) fn hit(&self, x: &[f32]) -> Option<Hit> {
        debug_assert_eq!(x.len(), self.block);
        let total: f32 = x.iter().map(|s| s * s).sum();
        // Both tones must reach the minimum level: quieter blocks (silence, most of a call) stop
        // here, at the cost of one multiply-add a sample.
        if total < 1.6 * self.min_tone_energy {
            return None;
        }
        let (energy, s1, s2) = self.goertzel8(x);
        let (row, row_e) = peak(&energy[..4]);
        let (col, col_e) = peak(&energy[4..]);
        if row_e < self.min_tone_energy || col_e < self.min_tone_energy {
            return None;
        }
        if col_e > row_e * db(REVERSE_TWIST_DB) || col_e < row_e * db(-NORMAL_TWIST_DB) {
            return None;
        }
        let stands_out = |group: &[f32], best: usize, best_e: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &e)| i == best || best_e >= e * db(RELATIVE_PEAK_DB))
        };
        if !stands_out(&energy[..4], row, row_e) || !stands_out(&energy[4..], col, col_e) {
            return None;
        }
        if row_e + col_e < TONE_TO_TOTAL * total {
            return None;
        }
        let ((row_lo, row_hi), (col_lo, col_hi)) = (self.flanks[row], self.flanks[col + 4]);
        let [rc, rl, rh, cc, cl, ch] = self.windowed6(
            x,
            [
                self.coefficients[row],
                row_lo,
                row_hi,
                self.coefficients[col + 4],
                col_lo,
                col_hi,
            ],
        );
        if rl > rc || rh > rc || cl > cc || ch > cc {
            return None;
        }
        if let Some(c) = self.harmonics[col] {
            let harmonic = self.energy_of(goertzel(x, c));
            if harmonic > col_e * db(-SECOND_HARMONIC_DB) {
                return None;
            }
        }
        Some(Hit {
            digit: Digit::from_position(row, col),
            row,
            col: col + 4,
            phases: (
                self.phase(row, s1[row], s2[row]),
                self.phase(col + 4, s1[col + 4], s2[col + 4]),
            ),
        })
    }

    /// Whether `next`, the block after `prev`, continues the same tones: same digit, and each
    /// tone's phase advanced as its nominal frequency's would, within the tolerance.
    pub(super) fn continues(&self, prev: &Hit, next: &Hit) -> bool {
        let steady = |k: usize, before: f32, after: f32| {
            let (expected, tolerance) = self.advance[k];
            let error = (after - before - expected + std::f32::consts::PI)
                .rem_euclid(std::f32::consts::TAU)
                - std::f32::consts::PI;
            error.abs() <= tolerance
        };
        prev.digit == next.digit
            && steady(next.row, prev.phases.0, next.phases.0)
            && steady(next.col, prev.phases.1, next.phases.1)
    }

    /// Six squared Goertzel magnitudes of the block under the Hann window, side by side.
    fn windowed6(&self, x: &[f32], c: [f32; 6]) -> [f32; 6] {
        let mut s1 = [0f32; 6];
        let mut s2 = [0f32; 6];
        for (&sample, &w) in x.iter().zip(&self.window) {
            let v = sample * w;
            for k in 0..6 {
                let s0 = v + c[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        let mut out = [0f32; 6];
        for k in 0..6 {
            out[k] = s1[k] * s1[k] + s2[k] * s2[k] - c[k] * s1[k] * s2[k];
        }
        out
    }

    /// The phase of tone `k`'s filter at the end of a block. Its last output `s1 - e^{-jw} s2` is
    /// the block's DFT at `w` times a constant phase, the same for every block, so phase
    /// differences between blocks are exact.
    fn phase(&self, k: usize, s1: f32, s2: f32) -> f32 {
        let (cos, sin) = self.rotations[k];
        (s2 * sin).atan2(s1 - s2 * cos)
    }

    /// The eight tone energies of a block, and the filters' last two states, computed side by side
    /// so the compiler can vectorise them.
    fn goertzel8(&self, x: &[f32]) -> ([f32; 8], [f32; 8], [f32; 8]) {
        let c = self.coefficients;
        let mut s1 = [0f32; 8];
        let mut s2 = [0f32; 8];
        for &sample in x {
            for k in 0..8 {
                let s0 = sample + c[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        let mut energy = [0f32; 8];
        for k in 0..8 {
            energy[k] = self.energy_of(s1[k] * s1[k] + s2[k] * s2[k] - c[k] * s1[k] * s2[k]);
        }
        (energy, s1, s2)
    }
}

/// The squared magnitude of one Goertzel filter over `x`.
fn goertzel(x: &[f32], c: f32) -> f32 {
    let (mut s1, mut s2) = (0f32, 0f32);
    for &sample in x {
        let s0 = sample + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// The index and value of the largest of four energies.
fn peak(e: &[f32]) -> (usize, f32) {
    e.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, v)| if v > best.1 { (i, v) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};

    fn level_dbm0(samples: &[f32]) -> f32 {
        let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
        10.0 * (power / (DBM0_PEAK * DBM0_PEAK / 2.0)).log10()
    }

    #[test]
    fn the_digital_milliwatt_is_zero_dbm0() {
        // G.711 tables 5 and 6: the eight bytes that repeat as a 1 kHz sine at 0 dBm0.
        let ulaw = [0x1e, 0x0b, 0x0b, 0x1e, 0x9e, 0x8b, 0x8b, 0x9e];
        let alaw = [0x34, 0x21, 0x21, 0x34, 0xb4, 0xa1, 0xa1, 0xb4];
        let u: Vec<f32> = ulaw.iter().map(|&b| f32::from(ULAW_TO_LINEAR[b])).collect();
        let a: Vec<f32> = alaw.iter().map(|&b| f32::from(ALAW_TO_LINEAR[b])).collect();
        assert!(level_dbm0(&u).abs() < 0.1, "{}", level_dbm0(&u));
        assert!(level_dbm0(&a).abs() < 0.1, "{}", level_dbm0(&a));
    }

    #[test]
    fn a_tone_reads_as_its_own_energy() {
        let analysis = Analysis::new(8000, -36.0);
        let n = analysis.block;
        for (k, hz) in LOW_GROUP.iter().chain(HIGH_GROUP.iter()).enumerate() {
            let x: Vec<f32> = (0..n)
                .map(|i| 1000.0 * (std::f32::consts::TAU * hz * i as f32 / 8000.0 + 0.3).sin())
                .collect();
            let total: f32 = x.iter().map(|s| s * s).sum();
            let (e, _, _) = analysis.goertzel8(&x);
            assert!(
                (e[k] / total - 1.0).abs() < 0.03,
                "{hz} Hz: {}",
                e[k] / total
            );
            for (j, other) in e.iter().enumerate() {
                // a neighbour leaks at most through the window's first side lobe (-13 dB), well
                // under the 8 dB a tone must stand above the others of its group
                if j != k {
                    assert!(*other < total * 0.05, "{hz} Hz leaks into bin {j}");
                }
            }
        }
    }
}
