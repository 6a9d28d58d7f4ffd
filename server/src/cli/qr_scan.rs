//! The till's scanner in software: the text of the QR code in a PNG, read in-process (the png
//! crate decodes the image, rqrr finds and reads the code), so `loyalty till scan --png` works on
//! a machine with nothing else installed. The tests still check the codes the core draws with
//! zbarimg, an independent decoder.

use std::io::Cursor;
use std::path::Path;

/// Largest PNG file read, and most pixels decoded: a phone screenshot is far below both.
const MAX_FILE_BYTES: u64 = 32 << 20;
const MAX_PIXELS: usize = 40_000_000;

/// The text of the one QR code in the PNG at `path`.
pub fn decode_png_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is {size} bytes: too large for a picture of a QR code"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    decode_png(&bytes).map_err(|e| format!("{shown}: {e}"))
}

/// The text of the one QR code in a PNG image.
pub fn decode_png(bytes: &[u8]) -> Result<String, String> {
    let (width, height, grey) = greyscale(bytes)?;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        grey.get(y * width + x).copied().unwrap_or(255)
    });
    let mut texts: Vec<String> = image
        .detect_grids()
        .iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, text)| text))
        .collect();
    texts.dedup();
    match texts.len() {
        1 => Ok(texts.remove(0)),
        0 => Err("no readable QR code in the picture".into()),
        n => Err(format!(
            "{n} different QR codes in the picture: show the till one"
        )),
    }
}

/// The image as one byte of luminance per pixel, whatever the PNG's colour type and depth;
/// transparent pixels count as white paper.
fn greyscale(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: 4 * MAX_PIXELS,
        },
    );
    // Palette and low bit depths become 8-bit samples, 16-bit samples become 8-bit.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let not_png = |e: png::DecodingError| format!("not a PNG image ({e})");
    let mut reader = decoder.read_info().map_err(not_png)?;
    let size = reader
        .output_buffer_size()
        .ok_or("the PNG is too large to decode")?;
    let mut buffer = vec![0; size];
    let info = reader.next_frame(&mut buffer).map_err(not_png)?;
    let (width, height) = (info.width as usize, info.height as usize);
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(format!("a {width}x{height} picture is too large to scan"));
    }
    let channels = info.color_type.samples();
    let frame = buffer
        .get(..info.buffer_size())
        .ok_or("the PNG decoder gave a short frame")?;
    let grey = frame
        .chunks_exact(info.line_size)
        .flat_map(|row| row.chunks_exact(channels).take(width))
        .map(|px| luminance(info.color_type, px))
        .collect();
    Ok((width, height, grey))
}

fn luminance(colour: png::ColorType, px: &[u8]) -> u8 {
    let (value, alpha) = match (colour, px) {
        (png::ColorType::Grayscale, [v, ..]) => (u32::from(*v), 255),
        (png::ColorType::GrayscaleAlpha, [v, a, ..]) => (u32::from(*v), u32::from(*a)),
        (png::ColorType::Rgb, [r, g, b, ..]) => (rec601(*r, *g, *b), 255),
        (png::ColorType::Rgba, [r, g, b, a, ..]) => (rec601(*r, *g, *b), u32::from(*a)),
        _ => (255, 255),
    };
    // Over white: what a scanner sees on a screen or on paper.
    let over_white = (value * alpha + 255 * (255 - alpha)) / 255;
    u8::try_from(over_white).unwrap_or(u8::MAX)
}

fn rec601(r: u8, g: u8, b: u8) -> u32 {
    (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::checkout_code::{CheckoutCode, generate_key_pair, with_luhn_check_digit};
    use loyalty_core::qr::QrMatrix;

    fn code_text() -> String {
        let key = generate_key_pair().unwrap();
        CheckoutCode::make(
            &key,
            with_luhn_check_digit(600_000_000_000_123),
            1_800_000_000_000,
        )
        .text
    }

    #[test]
    fn reads_back_what_the_core_draws_at_every_scale() {
        let text = code_text();
        let matrix = QrMatrix::encode(&text).unwrap();
        for scale in [1, 2, 4, 8] {
            let png = matrix.to_png(scale).unwrap();
            assert_eq!(decode_png(&png), Ok(text.clone()), "scale {scale}");
        }
    }

    #[test]
    fn reads_colour_and_transparent_pictures() {
        let text = code_text();
        let matrix = QrMatrix::encode(&text).unwrap();
        let grey = greyscale(&matrix.to_png(4).unwrap()).unwrap();
        let (w, h, pixels) = grey;
        // The same picture as RGBA: dark modules blue and opaque, light ones transparent.
        let mut rgba = Vec::with_capacity(w * h * 4);
        for &v in &pixels {
            rgba.extend_from_slice(if v < 128 {
                &[10, 20, 90, 255]
            } else {
                &[0, 0, 0, 0]
            });
        }
        let mut png = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png, w as u32, h as u32);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&rgba).unwrap();
        }
        assert_eq!(decode_png(&png), Ok(text));
    }

    #[test]
    fn pictures_without_a_code_and_other_files_are_refused() {
        let blank = {
            let mut png = Vec::new();
            let mut encoder = png::Encoder::new(&mut png, 64, 64);
            encoder.set_color(png::ColorType::Grayscale);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[255u8; 64 * 64]).unwrap();
            drop(writer);
            png
        };
        assert_eq!(
            decode_png(&blank),
            Err("no readable QR code in the picture".into())
        );
        assert!(
            decode_png(b"GIF89a not a png")
                .unwrap_err()
                .starts_with("not a PNG")
        );
        assert!(decode_png(&[]).unwrap_err().starts_with("not a PNG"));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing.png");
        assert!(
            decode_png_file(&missing)
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
