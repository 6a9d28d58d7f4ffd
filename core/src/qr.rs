//! QR code rendering for checkout codes and any other text the server issues
//! (printed cards, e-mail, web pages, a terminal during support sessions).
//!
//! This module owns the choice of QR parameters (a single segment in the
//! densest mode the text allows, ECC level M exactly, smallest fitting
//! version) and three renderers that all add the 4-module quiet zone the QR
//! standard requires: SVG, PNG and Unicode half blocks. A 122-character
//! checkout code is alphanumeric mode, version 5 (37×37 modules).
//!
//! ```
//! use loyalty_core::qr::QrMatrix;
//!
//! # fn main() -> Result<(), loyalty_core::qr::QrError> {
//! let qr = QrMatrix::encode("HELLO LOYALTY")?;
//! assert_eq!((qr.version, qr.size), (1, 21));
//! let svg = qr.to_svg(4);
//! assert!(svg.starts_with("<svg") && svg.contains(r#"viewBox="0 0 29 29""#));
//! let png = qr.to_png(4)?;
//! assert_eq!(&png[1..4], b"PNG");
//! print!("{}", qr.to_terminal());
//! # Ok(())
//! # }
//! ```

use qrcodegen::{Mask, QrCode, QrCodeEcc, QrSegment, Version};
use std::fmt::Write as _;

use crate::checkout_code::CheckoutCode;

/// Light border, in modules, that every renderer adds on each side; scanners
/// need it to find the finder patterns.
pub const QUIET_ZONE: u32 = 4;
/// Largest PNG side accepted, in pixels: a version-40 code at 40 px per
/// module, and about 8 MiB of 1-bit pixels. Bigger requests are mistakes
/// that should not be allowed to exhaust memory.
pub const MAX_PNG_SIDE: u32 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("text does not fit in a version-40 QR code at ECC level M: {0}")]
    DataTooLong(#[source] qrcodegen::DataTooLong),
    #[error("module_px must be at least 1")]
    ZeroModulePx,
    #[error("PNG would be {side} px on a side; the limit is {MAX_PNG_SIDE}")]
    ImageTooLarge { side: u64 },
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The module grid of one QR code, without its quiet zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    /// Modules per side (17 + 4 × version).
    pub size: u32,
    /// QR version, 1..=40.
    pub version: u8,
    /// `size × size` modules, row-major, `true` = dark.
    pub modules: Vec<bool>,
}

/// The mask pattern every checkout code is drawn with (0..=7, ISO/IEC 18004 numbering).
///
/// The standard's encoding procedure tries all eight masks and keeps the one with the lowest
/// penalty score (long runs, 2×2 blocks, finder-like patterns, dark/light balance); that search
/// is most of the cost of a QR encode. Any mask makes a valid symbol, since the mask is written
/// in the format information and every decoder reads it from there; the search only optimises
/// how easy the symbol is to read. A checkout code is always 122 alphanumeric characters at
/// version 5-M whose bits are mostly a signature, so the search was done once, offline, over
/// 10,000 codes (`cargo bench -p loyalty-tests --bench qr_masks`) and this mask is the one with
/// the lowest mean penalty over them. Figures and the decoding tests: `docs/checkout-code.md` §5.
pub const CHECKOUT_MASK: u8 = 2;
// `Mask::new` panics above 7: refuse to build instead.
const _: () = assert!(CHECKOUT_MASK <= 7);

/// ECI assignment number for UTF-8.
const ECI_UTF8: u32 = 26;

/// `mask`: `None` for the standard's penalty search, or a fixed mask.
fn encode_qr(text: &str, mask: Option<Mask>) -> Result<QrCode, QrError> {
    let segments = if text.is_ascii() {
        QrSegment::make_segments(text)
    } else {
        // Byte mode has no defined charset; without the UTF-8 ECI marker
        // readers guess, and zbar for one turns "Grüße" into Shift-JIS
        // mojibake. ASCII needs no marker, so checkout codes never carry one.
        vec![
            QrSegment::make_eci(ECI_UTF8),
            QrSegment::make_bytes(text.as_bytes()),
        ]
    };
    // `QrCode::encode_text` always boosts the ECC level when the data leaves
    // room, so ask for M through the advanced entry point instead: a fixed
    // level keeps the printed module density (and so the scan distance)
    // predictable across codes.
    QrCode::encode_segments_advanced(
        &segments,
        QrCodeEcc::Medium,
        Version::MIN,
        Version::MAX,
        mask,
        false,
    )
    .map_err(QrError::DataTooLong)
}

impl QrMatrix {
    /// Encodes `text` as one segment: numeric or alphanumeric mode when every
    /// character allows it (Base45 checkout codes are alphanumeric), bytes
    /// otherwise, with a UTF-8 ECI marker in front when the text is not ASCII.
    pub fn encode(text: &str) -> Result<QrMatrix, QrError> {
        encode_qr(text, None).map(Self::from_code)
    }

    /// The QR code of a checkout code, as [`QrMatrix::encode`] draws its text but with the fixed
    /// [`CHECKOUT_MASK`] instead of the mask search: a fraction of the cost, for the code the app
    /// redraws at every rotation. Use [`QrMatrix::encode`] for any other text, whose content the
    /// fixed mask was not chosen for.
    pub fn encode_checkout_code(code: &CheckoutCode) -> Result<QrMatrix, QrError> {
        encode_qr(&code.text, Some(Mask::new(CHECKOUT_MASK))).map(Self::from_code)
    }

    fn from_code(code: QrCode) -> QrMatrix {
        let side = code.size();
        let modules = (0..side)
            .flat_map(|y| (0..side).map(move |x| (x, y)))
            .map(|(x, y)| code.get_module(x, y))
            .collect();
        QrMatrix {
            size: u32::try_from(side).unwrap_or(0),
            version: code.version().value(),
            modules,
        }
    }

    /// Whether the module at (`x`, `y`) is dark; anything outside the grid,
    /// the quiet zone included, is light.
    pub fn is_dark(&self, x: u32, y: u32) -> bool {
        if x >= self.size || y >= self.size {
            return false;
        }
        let index = u64::from(y) * u64::from(self.size) + u64::from(x);
        usize::try_from(index)
            .ok()
            .and_then(|i| self.modules.get(i))
            .copied()
            .unwrap_or(false)
    }

    /// Modules per side including the quiet zone on both sides.
    pub fn padded_size(&self) -> u32 {
        self.size.saturating_add(2 * QUIET_ZONE)
    }

    // Coordinates with the quiet zone included, so renderers never offset by hand.
    fn is_dark_padded(&self, x: u32, y: u32) -> bool {
        match (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) {
            (Some(x), Some(y)) => self.is_dark(x, y),
            _ => false,
        }
    }

    /// SVG in module units (`viewBox` = padded size) scaled to `module_px`
    /// per module. Horizontal runs of dark modules are merged into one
    /// rectangle each and all of them go into a single `<path>`, which keeps
    /// a version-5 code around 5 KB and avoids the hairline seams renderers
    /// draw between adjacent shapes. A `module_px` of 0 is treated as 1.
    pub fn to_svg(&self, module_px: u32) -> String {
        let n = self.padded_size();
        let px = u64::from(n) * u64::from(module_px.max(1));
        let mut path = String::new();
        for y in 0..n {
            let mut x = 0;
            while x < n {
                if !self.is_dark_padded(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < n && self.is_dark_padded(x, y) {
                    x += 1;
                }
                let run = x - start;
                // Writing to a String cannot fail.
                let _ = write!(path, "M{start},{y}h{run}v1h-{run}z");
            }
        }
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" "#,
                r#"width="{px}" height="{px}" viewBox="0 0 {n} {n}" shape-rendering="crispEdges">"#,
                r##"<rect width="{n}" height="{n}" fill="#ffffff"/>"##,
                r##"<path fill="#000000" d="{path}"/>"##,
                "</svg>\n"
            ),
            px = px,
            n = n,
            path = path,
        )
    }

    /// 1-bit grayscale PNG, `module_px` pixels per module, quiet zone
    /// included. One bit per pixel keeps a version-5 code at 4 px per module
    /// well under 1 KB, which matters for e-mail.
    pub fn to_png(&self, module_px: u32) -> Result<Vec<u8>, QrError> {
        if module_px == 0 {
            return Err(QrError::ZeroModulePx);
        }
        let side64 = u64::from(self.padded_size()) * u64::from(module_px);
        let side = u32::try_from(side64)
            .ok()
            .filter(|s| *s <= MAX_PNG_SIDE)
            .ok_or(QrError::ImageTooLarge { side: side64 })?;
        let row_bytes = side.div_ceil(8) as usize;
        let n = self.padded_size();

        let mut pixels = Vec::with_capacity(row_bytes * side as usize);
        for y in 0..n {
            // In 1-bit grayscale 1 is white, so start light and clear bits.
            let mut row = vec![0xffu8; row_bytes];
            for x in 0..n {
                if !self.is_dark_padded(x, y) {
                    continue;
                }
                let first = x * module_px;
                for px in first..first + module_px {
                    if let Some(byte) = row.get_mut((px / 8) as usize) {
                        *byte &= !(0x80u8 >> (px % 8));
                    }
                }
            }
            for _ in 0..module_px {
                pixels.extend_from_slice(&row);
            }
        }

        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
        Ok(out)
    }

    /// Unicode half blocks, two module rows per line, quiet zone included.
    /// Dark modules are drawn with the terminal's foreground colour and light
    /// ones are left as background, so the code reads correctly on a light
    /// theme (dark text on light background). No ANSI colours, so the output
    /// also survives logs and copy-paste; on a dark theme it shows inverted,
    /// which many phone scanners refuse.
    pub fn to_terminal(&self) -> String {
        let n = self.padded_size();
        let mut out = String::new();
        for y in (0..n).step_by(2) {
            for x in 0..n {
                let top = self.is_dark_padded(x, y);
                let bottom = self.is_dark_padded(x, y + 1);
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout_code::{CheckoutCode, generate_key_pair, with_luhn_check_digit};
    use std::process::Command;

    fn checkout_text() -> String {
        let key = generate_key_pair().expect("keygen");
        CheckoutCode::make(
            &key,
            with_luhn_check_digit(600_000_000_000_123),
            1_767_225_600_000,
        )
        .text
    }

    fn decode_png(png: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    /// Runs `zbarimg` on the PNG; `None` (with a notice) when it is not
    /// installed, so `cargo test` still runs on a bare machine. The project's
    /// test command installs zbar-tools and sets `LOYALTY_REQUIRE_ZBAR=1`, so
    /// there a missing decoder fails instead of skipping.
    fn zbar_decode(png: &[u8]) -> Option<String> {
        if Command::new("zbarimg").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("LOYALTY_REQUIRE_ZBAR").is_none(),
                "zbarimg is required (LOYALTY_REQUIRE_ZBAR is set) but not on PATH"
            );
            eprintln!(
                "NOTICE: zbarimg not on PATH; skipping scan check (apt-get install zbar-tools)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("code.png");
        std::fs::write(&path, png).expect("write png");
        let out = Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&path)
            .output()
            .expect("run zbarimg");
        assert!(out.status.success(), "zbarimg failed: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        // Only the newline zbarimg appends; spaces are Base45 digits.
        Some(text.strip_suffix('\n').unwrap_or(&text).to_owned())
    }

    #[test]
    fn checkout_code_is_version_5_at_ecc_m() {
        let text = checkout_text();
        assert_eq!(text.len(), 122);
        let code = encode_qr(&text, None).expect("encode");
        assert_eq!(code.version().value(), 5);
        assert_eq!(code.error_correction_level(), QrCodeEcc::Medium);
        let qr = QrMatrix::encode(&text).expect("encode");
        assert_eq!((qr.version, qr.size), (5, 37));
        assert_eq!(qr.modules.len(), 37 * 37);
    }

    #[test]
    fn one_more_byte_would_need_version_6() {
        // 82 bytes of Base45 is 123 characters, over version 5's capacity.
        let qr = QrMatrix::encode(&"A".repeat(123)).expect("encode");
        assert_eq!(qr.version, 6);
    }

    #[test]
    fn ecc_level_is_not_boosted() {
        for text in ["A", "HELLO", "12345"] {
            let code = encode_qr(text, None).expect("encode");
            assert_eq!(code.error_correction_level(), QrCodeEcc::Medium, "{text}");
            assert_eq!(code.version().value(), 1);
        }
    }

    #[test]
    fn too_long_is_an_error() {
        assert!(matches!(
            QrMatrix::encode(&"x".repeat(3000)),
            Err(QrError::DataTooLong(_))
        ));
    }

    #[test]
    fn svg_is_well_formed() {
        let qr = QrMatrix::encode(&checkout_text()).expect("encode");
        let svg = qr.to_svg(4);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(r#"viewBox="0 0 45 45""#));
        assert!(svg.contains(r#"width="180" height="180""#));
        assert!(svg.contains(r#"shape-rendering="crispEdges""#));
        assert!(svg.contains(r##"fill="#ffffff""##));
        assert_eq!(svg.matches("<path").count(), 1);
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        // Merged runs: clearly fewer rectangles than dark modules (random
        // data averages about two modules per horizontal run).
        let dark = qr.modules.iter().filter(|d| **d).count();
        let rects = svg.matches('M').count();
        assert!(
            rects * 3 < dark * 2,
            "{rects} rects for {dark} dark modules"
        );
    }

    #[test]
    fn svg_path_covers_exactly_the_dark_modules() {
        let qr = QrMatrix::encode("HELLO LOYALTY").expect("encode");
        let svg = qr.to_svg(1);
        let d = svg
            .split(r#" d=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("path data");
        let n = qr.padded_size();
        let mut painted = vec![false; (n * n) as usize];
        for rect in d.split('z').filter(|r| !r.is_empty()) {
            let rect = rect.strip_prefix('M').expect("M");
            let (xy, rest) = rect.split_once('h').expect("h");
            let (x, y) = xy.split_once(',').expect(",");
            let run: u32 = rest.split_once('v').expect("v").0.parse().expect("run");
            let (x, y): (u32, u32) = (x.parse().expect("x"), y.parse().expect("y"));
            for dx in 0..run {
                painted[(y * n + x + dx) as usize] = true;
            }
        }
        for y in 0..n {
            for x in 0..n {
                assert_eq!(
                    painted[(y * n + x) as usize],
                    qr.is_dark_padded(x, y),
                    "({x},{y})"
                );
            }
        }
    }

    #[test]
    fn png_decodes_to_expected_dimensions() {
        let qr = QrMatrix::encode(&checkout_text()).expect("encode");
        let png = qr.to_png(4).expect("png");
        println!(
            "version 5 checkout code PNG at 4 px/module: {} bytes",
            png.len()
        );
        let (info, pixels) = decode_png(&png);
        assert_eq!((info.width, info.height), (180, 180));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        // Spot checks: quiet zone is white, the top-left finder corner dark.
        let bit = |x: u32, y: u32| {
            let byte = pixels[(y * info.line_size as u32 + x / 8) as usize];
            byte & (0x80 >> (x % 8)) != 0
        };
        assert!(bit(0, 0));
        assert!(bit(15, 15));
        assert!(!bit(16, 16));
        assert!(!bit(16 + 27, 16 + 27));
        assert_eq!(bit(16 + 4, 16 + 4), !qr.is_dark(1, 1));
    }

    #[test]
    fn png_rejects_silly_scales() {
        let qr = QrMatrix::encode("A").expect("encode");
        assert!(matches!(qr.to_png(0), Err(QrError::ZeroModulePx)));
        assert!(matches!(
            qr.to_png(u32::MAX),
            Err(QrError::ImageTooLarge { .. })
        ));
        assert!(qr.to_png(1).is_ok());
    }

    #[test]
    fn terminal_rows_pair_up_modules() {
        let qr = QrMatrix::encode(&checkout_text()).expect("encode");
        let text = qr.to_terminal();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 45_usize.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == 45));
        assert_eq!(unpack_terminal(&text, 45), padded_grid(&qr));
    }

    fn padded_grid(qr: &QrMatrix) -> Vec<Vec<bool>> {
        let n = qr.padded_size();
        (0..n)
            .map(|y| (0..n).map(|x| qr.is_dark_padded(x, y)).collect())
            .collect()
    }

    fn unpack_terminal(text: &str, n: usize) -> Vec<Vec<bool>> {
        let mut grid = vec![vec![false; n]; n];
        for (line_no, line) in text.lines().enumerate() {
            for (x, c) in line.chars().enumerate() {
                let (top, bottom) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    _ => (false, false),
                };
                grid[line_no * 2][x] = top;
                if line_no * 2 + 1 < n {
                    grid[line_no * 2 + 1][x] = bottom;
                }
            }
        }
        grid
    }

    #[test]
    fn zbar_reads_the_png_back() {
        for text in [
            checkout_text(),
            "HTTPS://LOYALTY.EXAMPLE/C/6000000000001237".to_owned(),
            "Grüße, card 6000 0000 0000 1237".to_owned(),
        ] {
            let qr = QrMatrix::encode(&text).expect("encode");
            let Some(decoded) = zbar_decode(&qr.to_png(4).expect("png")) else {
                return;
            };
            assert_eq!(decoded, text);
        }
    }

    /// Checkout codes for `n` keys × cards × steps, all different: a spread of real payloads.
    fn many_checkout_codes(n: usize) -> Vec<CheckoutCode> {
        let mut codes = Vec::with_capacity(n);
        let mut key = generate_key_pair().expect("keygen");
        for i in 0..n as u64 {
            if i % 20 == 19 {
                key = generate_key_pair().expect("keygen");
            }
            let card = with_luhn_check_digit(600_000_000_000_000 + i * 104_729_003);
            let now_ms = 1_767_225_600_000 + i as i64 * 7_777_777;
            codes.push(CheckoutCode::make(&key, card, now_ms));
        }
        codes
    }

    /// rqrr's reading of a PNG: the text and the mask its format information names.
    fn rqrr_decode(png: &[u8]) -> (String, u16, usize) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        let (w, h) = (info.width as usize, info.height as usize);
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * info.line_size + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one code in the picture");
        let (meta, text) = grids[0].decode().expect("rqrr decodes the code");
        (text, meta.mask, meta.version.0)
    }

    #[test]
    fn checkout_codes_differ_from_the_searched_encoding_only_by_the_mask() {
        let mut same = 0;
        for code in many_checkout_codes(80) {
            let fixed = QrMatrix::encode_checkout_code(&code).expect("encode");
            assert_eq!((fixed.version, fixed.size), (5, 37));
            let searched = encode_qr(&code.text, None).expect("encode");
            if searched.mask().value() == CHECKOUT_MASK {
                assert_eq!(fixed, QrMatrix::from_code(searched));
                same += 1;
            } else {
                assert_ne!(fixed, QrMatrix::from_code(searched));
            }
        }
        // The search picks mask 2 for about a quarter of codes (docs/checkout-code.md §5).
        assert!(same > 0, "no code where the search chose the fixed mask");
    }

    #[test]
    fn rqrr_reads_many_fixed_mask_checkout_codes() {
        for (i, code) in many_checkout_codes(200).into_iter().enumerate() {
            let qr = QrMatrix::encode_checkout_code(&code).expect("encode");
            // Mostly the 4 px the tests use elsewhere; every tenth at 2 px, near a scanner's limit.
            let px = if i % 10 == 0 { 2 } else { 4 };
            let (text, mask, version) = rqrr_decode(&qr.to_png(px).expect("png"));
            assert_eq!(text, code.text, "code {i} at {px} px");
            assert_eq!(mask, u16::from(CHECKOUT_MASK), "code {i}");
            assert_eq!(version, 5, "code {i}");
        }
    }

    #[test]
    fn zbar_reads_many_fixed_mask_checkout_codes() {
        let codes = many_checkout_codes(100);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut paths = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            let qr = QrMatrix::encode_checkout_code(code).expect("encode");
            let path = dir.path().join(format!("code-{i:03}.png"));
            std::fs::write(&path, qr.to_png(4).expect("png")).expect("write png");
            paths.push(path);
        }
        let Some(out) = zbar_decode_files(&paths) else {
            return;
        };
        // One line per file, in the order given.
        let read: Vec<&str> = out.lines().collect();
        let expected: Vec<&str> = codes.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(read, expected);
    }

    /// `zbarimg` over several files in one process; `None` as [`zbar_decode`] when not installed.
    fn zbar_decode_files(paths: &[std::path::PathBuf]) -> Option<String> {
        if Command::new("zbarimg").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("LOYALTY_REQUIRE_ZBAR").is_none(),
                "zbarimg is required (LOYALTY_REQUIRE_ZBAR is set) but not on PATH"
            );
            eprintln!("NOTICE: zbarimg not on PATH; skipping scan check");
            return None;
        }
        let out = Command::new("zbarimg")
            .args(["--raw", "-q"])
            .args(paths)
            .output()
            .expect("run zbarimg");
        assert!(out.status.success(), "zbarimg failed: {out:?}");
        Some(String::from_utf8(out.stdout).expect("utf-8"))
    }

    #[test]
    fn zbar_reads_a_2px_png() {
        let text = checkout_text();
        let qr = QrMatrix::encode(&text).expect("encode");
        if let Some(decoded) = zbar_decode(&qr.to_png(2).expect("png")) {
            assert_eq!(decoded, text);
        }
    }

    #[test]
    fn zbar_reads_the_terminal_rendering() {
        // Rasterise what a light-theme terminal shows (foreground black on a
        // white background) and scan it, to prove the half-block layout
        // is a scannable code and not just a plausible-looking one.
        let text = checkout_text();
        let qr = QrMatrix::encode(&text).expect("encode");
        let n = qr.padded_size();
        let grid = unpack_terminal(&qr.to_terminal(), n as usize);
        let from_terminal = QrMatrix {
            size: n,
            version: qr.version,
            modules: grid.into_iter().flatten().collect(),
        };
        // `from_terminal` already contains the quiet zone, so its PNG has
        // a double one; scanners do not mind extra margin.
        if let Some(decoded) = zbar_decode(&from_terminal.to_png(4).expect("png")) {
            assert_eq!(decoded, text);
        }
    }
}
