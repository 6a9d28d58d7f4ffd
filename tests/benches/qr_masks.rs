//! QR mask analysis for checkout codes. Run with `cargo bench -p loyalty-tests --bench qr_masks`.
//!
//! The core draws every checkout code with one fixed mask instead of qrcodegen's search over all
//! eight (`core/src/qr.rs`, `CHECKOUT_MASK`). This bench is how that mask was chosen and what it
//! gives up: for many real checkout codes it draws each code with each of the eight masks and
//! scores it with the penalty rules of ISO/IEC 18004 (runs, 2×2 blocks, finder-like patterns,
//! dark/light balance: the score the search minimises, computed here as qrcodegen 1.8 computes
//! it), and prints per mask the mean score, the mean and worst excess over the best mask for the
//! same code, and how often it is the best. `QR_MASK_CODES` sets the number of codes (default
//! 10,000). Figures in `docs/checkout-code.md`.

use loyalty_core::checkout_code::{
    CheckoutCode, SigningKey, generate_key_pair, with_luhn_check_digit,
};
use loyalty_core::qr::CHECKOUT_MASK;
use qrcodegen::{Mask, QrCode, QrCodeEcc, QrSegment, Version};

/// Codes signed with one key before the next is made.
const CODES_PER_KEY: usize = 50;
/// Penalty weights of the standard (N1 to N4).
const N1: i32 = 3;
const N2: i32 = 3;
const N3: i32 = 40;
const N4: i32 = 10;

fn main() {
    let n: usize = std::env::var("QR_MASK_CODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut scores: Vec<[i32; 8]> = Vec::with_capacity(n);
    let mut key: Option<SigningKey> = None;
    for i in 0..n {
        if i % CODES_PER_KEY == 0 {
            key = Some(generate_key_pair().expect("key"));
        }
        let key = key.as_ref().expect("key made above");
        // Cards spread over the number space, steps over a year from 2026.
        let card = with_luhn_check_digit(600_000_000_000_000 + (i as u64) * 7_919_111);
        let now_ms = 1_767_225_600_000 + (i as i64) * 3_163_000;
        let text = CheckoutCode::make(key, card, now_ms).text;
        let segments = QrSegment::make_segments(&text);
        let mut row = [0i32; 8];
        for (mask, score) in (0u8..).zip(row.iter_mut()) {
            let code = QrCode::encode_segments_advanced(
                &segments,
                QrCodeEcc::Medium,
                Version::MIN,
                Version::MAX,
                Some(Mask::new(mask)),
                false,
            )
            .expect("qr");
            assert_eq!(code.version().value(), 5);
            *score = penalty(&code);
        }
        // The scorer must agree with qrcodegen's own choice, or these figures mean nothing.
        let searched = QrCode::encode_segments_advanced(
            &segments,
            QrCodeEcc::Medium,
            Version::MIN,
            Version::MAX,
            None,
            false,
        )
        .expect("qr");
        let best = row.iter().copied().min().unwrap_or_default();
        assert_eq!(row[usize::from(searched.mask().value())], best);
        scores.push(row);
    }
    report(&scores);
}

fn report(scores: &[[i32; 8]]) {
    let n = scores.len();
    let best: Vec<i32> = scores
        .iter()
        .map(|r| r.iter().copied().min().unwrap_or_default())
        .collect();
    println!("{n} checkout codes, each drawn with every mask (version 5-M)");
    println!();
    println!(
        "| mask | mean penalty | mean excess over the code's best | 99th pct excess | worst excess | worst penalty | best for |"
    );
    println!("|---|---|---|---|---|---|---|");
    for mask in 0..8 {
        let mut excess: Vec<i32> = scores.iter().zip(&best).map(|(r, b)| r[mask] - b).collect();
        excess.sort_unstable();
        let mean = scores.iter().map(|r| f64::from(r[mask])).sum::<f64>() / n as f64;
        let mean_excess = excess.iter().map(|&e| f64::from(e)).sum::<f64>() / n as f64;
        let p99 = excess[(n * 99 / 100).min(n - 1)];
        let worst = excess[n - 1];
        let worst_penalty = scores.iter().map(|r| r[mask]).max().unwrap_or_default();
        let wins = excess.iter().filter(|&&e| e == 0).count();
        let chosen = if mask == usize::from(CHECKOUT_MASK) {
            " (the core's)"
        } else {
            ""
        };
        println!(
            "| {mask}{chosen} | {mean:.0} | {mean_excess:.0} | {p99} | {worst} | {worst_penalty} | {:.1}% |",
            100.0 * wins as f64 / n as f64
        );
    }
    let mean_best = best.iter().map(|&b| f64::from(b)).sum::<f64>() / n as f64;
    let worst_best = best.iter().copied().max().unwrap_or_default();
    println!("| search (best of 8) | {mean_best:.0} | 0 | 0 | 0 | {worst_best} | 100% |");
}

/// The penalty score of a finished symbol (mask and format bits drawn), as qrcodegen 1.8 scores
/// it in its mask search (`QrCode::get_penalty_score`, MIT licence), on the public module grid.
fn penalty(code: &QrCode) -> i32 {
    let size = code.size();
    let at = |x: i32, y: i32| code.get_module(x, y);
    let mut score = 0;
    for line in 0..size {
        score += line_penalty(size, |i| at(i, line));
        score += line_penalty(size, |i| at(line, i));
    }
    for y in 0..size - 1 {
        for x in 0..size - 1 {
            let c = at(x, y);
            if c == at(x + 1, y) && c == at(x, y + 1) && c == at(x + 1, y + 1) {
                score += N2;
            }
        }
    }
    let dark: i32 = (0..size)
        .flat_map(|y| (0..size).map(move |x| (x, y)))
        .map(|(x, y)| i32::from(at(x, y)))
        .sum();
    let total = size * size;
    let k = ((dark * 20 - total * 10).abs() + total - 1) / total - 1;
    score + k * N4
}

/// Runs of five or more modules of one colour, and finder-like 1:1:3:1:1 patterns with four light
/// modules on a side, along one row or column.
fn line_penalty(size: i32, module: impl Fn(i32) -> bool) -> i32 {
    let mut score = 0;
    let mut colour = false;
    let mut run = 0;
    let mut history = RunHistory::new(size);
    for i in 0..size {
        if module(i) == colour {
            run += 1;
            if run == 5 {
                score += N1;
            } else if run > 5 {
                score += 1;
            }
        } else {
            history.push(run);
            if !colour {
                score += history.finder_like() * N3;
            }
            colour = module(i);
            run = 1;
        }
    }
    if colour {
        history.push(run);
        run = 0;
    }
    history.push(run + size); // the light border after the line
    score + history.finder_like() * N3
}

struct RunHistory {
    size: i32,
    runs: [i32; 7],
}

impl RunHistory {
    fn new(size: i32) -> Self {
        Self { size, runs: [0; 7] }
    }

    fn push(&mut self, mut run: i32) {
        if self.runs[0] == 0 {
            run += self.size; // the light border before the line
        }
        self.runs.copy_within(0..6, 1);
        self.runs[0] = run;
    }

    fn finder_like(&self) -> i32 {
        let r = &self.runs;
        let n = r[1];
        let core = n > 0 && r[2] == n && r[3] == n * 3 && r[4] == n && r[5] == n;
        i32::from(core && r[0] >= n * 4 && r[6] >= n)
            + i32::from(core && r[6] >= n * 4 && r[0] >= n)
    }
}
