//! Decoding user images (JPEG, PNG; WebP, BMP and GIF natively) with bounded memory. The
//! browser package leaves the WebP, BMP and GIF decoders out (its 3 MB budget): a page decodes
//! them itself (`createImageBitmap`) and passes the pixels.

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits, RgbImage};
use std::borrow::Cow;
use std::io::Cursor;

/// Largest image accepted, in pixels: 64 MP (an 8000x8000 photo). A 20000x20000 PNG would
/// need 1.2 GB as RGB before any resizing, so it is refused from its header alone.
pub const MAX_PIXELS: u64 = 64_000_000;

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Zero bytes.
    #[error("the image file is empty (0 bytes)")]
    Empty,
    /// The first bytes match no supported format.
    #[error("not an image: the bytes are not JPEG, PNG, WebP, GIF or BMP")]
    UnknownFormat,
    /// A format this build does not decode.
    #[error("{0}")]
    Unsupported(&'static str),
    /// Too many pixels to decode safely.
    #[error("image is {width}x{height} ({} MP); the limit is {} MP: downscale it first", (*.width as u64 * *.height as u64) / 1_000_000, MAX_PIXELS / 1_000_000)]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The decoder failed: truncated or corrupt data.
    #[error("corrupt or truncated {format} image: {detail}")]
    Corrupt {
        /// The format the header claimed.
        format: String,
        /// The decoder's complaint.
        detail: String,
    },
    /// Pixel data that does not match its stated size (from `ImageData`).
    #[error("pixel buffer of {len} bytes does not match {width}x{height} RGBA")]
    BadBuffer {
        /// Stated width.
        width: u32,
        /// Stated height.
        height: u32,
        /// Bytes given.
        len: usize,
    },
}

/// Decodes an encoded image into 8-bit RGB, checking its size before allocating pixels.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::UnknownFormat)?;
    let format = reader.format().ok_or(ImageError::UnknownFormat)?;
    #[cfg(target_family = "wasm")]
    match format {
        image::ImageFormat::Bmp => {
            return Err(ImageError::Unsupported(
                "BMP is not decoded by the browser package: decode it with createImageBitmap \
                 and pass the ImageData",
            ));
        }
        image::ImageFormat::Gif => {
            return Err(ImageError::Unsupported(
                "GIF is not decoded by the browser package: decode it with createImageBitmap \
                 and pass the ImageData",
            ));
        }
        image::ImageFormat::WebP => {
            return Err(ImageError::Unsupported(
                "WebP is not decoded by the browser package: decode it with createImageBitmap \
                 and pass the ImageData",
            ));
        }
        _ => {}
    }
    let corrupt = |e: image::ImageError| ImageError::Corrupt {
        format: format!("{format:?}").to_uppercase(),
        detail: e.to_string(),
    };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(corrupt)?;
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            format: format!("{format:?}").to_uppercase(),
            detail: format!("{width}x{height} has no pixels"),
        });
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a truncated scan with grey and reports nothing: a half-grey
        // photo would be classified, or trained on, as if it were whole.
        return Err(ImageError::Corrupt {
            format: "JPEG".into(),
            detail: "truncated: no end-of-image marker after the last scan".into(),
        });
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    // RGBA16 of the largest accepted image, plus the decoder's own buffers.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    reader.limits(limits);
    let image = reader.decode().map_err(corrupt)?;
    Ok(image.into_rgb8())
}

/// Whether a JPEG's last scan (start-of-scan marker `FF DA`) is followed by the end-of-image
/// marker `FF D9`: a download cut short has none. (An EXIF thumbnail carries its own pair of
/// markers, earlier in the file.)
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let end = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_scan, end), (Some(scan), Some(end)) if end > scan)
}

/// Wraps RGBA pixels (a browser `ImageData`) as RGB, dropping alpha.
pub fn from_rgba(width: u32, height: u32, rgba: Vec<u8>) -> Result<RgbImage, ImageError> {
    let len = rgba.len();
    let bad = || ImageError::BadBuffer { width, height, len };
    if width == 0 || height == 0 {
        return Err(bad());
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    let rgba = image::RgbaImage::from_raw(width, height, rgba).ok_or_else(bad)?;
    if rgba.len() != len {
        return Err(bad());
    }
    Ok(DynamicImage::ImageRgba8(rgba).into_rgb8())
}

/// Longest side an image keeps before it is resized for a network, as a multiple of its
/// shorter side: the center of a panorama. Without a bound a 1x64,000,000 image (a PNG of a
/// few hundred kB, within [MAX_PIXELS]) resized to a shorter side of 32 would need 6 GB.
pub const MAX_ASPECT: u32 = 2;

/// The center of `image` with its longer side trimmed to [MAX_ASPECT] times the shorter one
/// (the image itself when it already fits).
pub fn trim_to_aspect(image: &RgbImage) -> Cow<'_, RgbImage> {
    let (w, h) = image.dimensions();
    let (w0, h0) = (
        w.min(MAX_ASPECT.saturating_mul(h)),
        h.min(MAX_ASPECT.saturating_mul(w)),
    );
    if (w0, h0) == (w, h) {
        return Cow::Borrowed(image);
    }
    Cow::Owned(image::imageops::crop_imm(image, (w - w0) / 2, (h - h0) / 2, w0, h0).to_image())
}

/// Squashes an image to 32x32: resize the shorter side to 32 (after [trim_to_aspect]), then
/// crop the center.
pub fn to_cifar_size(image: &RgbImage) -> Vec<u8> {
    let image = trim_to_aspect(image);
    let image = image.as_ref();
    let (w, h) = image.dimensions();
    let scale = 32.0 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(32),
        ((h as f64 * scale).round() as u32).max(32),
    );
    let resized = image::imageops::resize(image, nw, nh, FilterType::Triangle);
    let cropped =
        image::imageops::crop_imm(&resized, (nw - 32) / 2, (nh - 32) / 2, 32, 32).to_image();
    let mut planar = vec![0u8; 3 * 32 * 32];
    for (i, p) in cropped.pixels().enumerate() {
        for c in 0..3 {
            planar[c * 1024 + i] = p.0[c];
        }
    }
    planar
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let pixels = vec![200u8; (width * height * 3) as usize];
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_png() {
        let image = decode(&png(5, 3)).unwrap();
        assert_eq!(image.dimensions(), (5, 3));
        assert_eq!(image.get_pixel(4, 2).0, [200, 200, 200]);
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        assert_eq!(decode(&[]), Err(ImageError::Empty));
        assert_eq!(decode(b"hello, world"), Err(ImageError::UnknownFormat));
        let full = png(64, 64);
        let err = decode(&full[..full.len() / 2]).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("corrupt or truncated PNG image"),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_jpeg_is_refused_not_filled_with_grey() {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(&[90u8; 48 * 32 * 3], 48, 32, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(decode(&jpeg).is_ok());
        let err = decode(&jpeg[..jpeg.len() * 2 / 3]).unwrap_err().to_string();
        assert!(
            err.contains("truncated JPEG") || err.contains("truncated: no end-of-image"),
            "{err}"
        );
        // Bytes after the end-of-image marker (common in the wild) are fine.
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"trailing bytes");
        assert!(decode(&trailing).is_ok());
    }

    /// A 20000x20000 PNG header is refused before a byte of its pixels is decoded.
    #[test]
    fn refuses_huge_images_from_the_header() {
        let mut huge = png(1, 1);
        // IHDR width and height live at bytes 16..24; the CRC is not checked before
        // dimensions are read, but fix it anyway so only the size is wrong.
        huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode(&huge),
            Err(ImageError::TooLarge {
                width: 20_000,
                height: 20_000
            })
        );
    }

    #[test]
    fn rgba_buffers_must_match_their_size() {
        assert_eq!(
            from_rgba(2, 1, vec![1, 2, 3, 255, 4, 5, 6, 255])
                .unwrap()
                .into_raw(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert!(matches!(
            from_rgba(2, 2, vec![0; 8]),
            Err(ImageError::BadBuffer { .. })
        ));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
