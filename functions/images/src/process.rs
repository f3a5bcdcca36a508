//! The image work itself, free of any store: decode, flatten to RGB, make the
//! thumbnail and the medium rendition, encode both as JPEG.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage};

/// Side of the square thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 200;
/// JPEG quality of the thumbnail.
pub const THUMBNAIL_QUALITY: u8 = 80;
/// The medium rendition fits inside a square of this side (never upscaled).
pub const MEDIUM_MAX: u32 = 800;
/// JPEG quality of the medium rendition.
pub const MEDIUM_QUALITY: u8 = 90;
/// Originals wider or taller than this are refused (decompression bombs).
pub const MAX_DIMENSION: u32 = 16_384;
/// The most memory the decoder may allocate for one image.
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// The renditions of one original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Width of the original, in pixels.
    pub width: u32,
    /// Height of the original, in pixels.
    pub height: u32,
    /// The original's format, lower case (`png`, `jpeg`, `gif`, `webp`, `bmp`).
    pub format: String,
    /// A `THUMBNAIL_SIZE`² cover crop, as JPEG.
    pub thumbnail: Vec<u8>,
    /// The original scaled to fit inside `MEDIUM_MAX`² (never upscaled), as JPEG.
    pub medium: Vec<u8>,
}

/// Decodes `bytes` (format guessed from the content) and renders the thumbnail and
/// the medium image. The error is a sentence saying why the bytes are not usable.
///
/// The result depends only on `bytes`, so processing the same upload twice gives
/// the same output.
pub fn process(bytes: &[u8]) -> Result<Processed, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("could not read the upload: {e}"))?;
    let Some(format) = reader.format() else {
        return Err(
            "the upload is not in a supported image format (png, jpeg, gif, webp, bmp)".into(),
        );
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let format = format_name(format);
    let image = reader
        .decode()
        .map_err(|e| format!("the upload looks like {format} but could not be decoded: {e}"))?;
    let (width, height) = (image.width(), image.height());
    let rgb = DynamicImage::ImageRgb8(to_rgb(image));

    let thumbnail = rgb
        .resize_to_fill(THUMBNAIL_SIZE, THUMBNAIL_SIZE, FilterType::Lanczos3)
        .into_rgb8();
    let medium = if width <= MEDIUM_MAX && height <= MEDIUM_MAX {
        rgb.into_rgb8()
    } else {
        rgb.resize(MEDIUM_MAX, MEDIUM_MAX, FilterType::Lanczos3)
            .into_rgb8()
    };
    Ok(Processed {
        width,
        height,
        format,
        thumbnail: jpeg(&thumbnail, THUMBNAIL_QUALITY)?,
        medium: jpeg(&medium, MEDIUM_QUALITY)?,
    })
}

/// The lower-case name of an image format (`png`, `jpeg`, ...).
pub fn format_name(format: ImageFormat) -> String {
    match format {
        ImageFormat::Png => "png".into(),
        ImageFormat::Jpeg => "jpeg".into(),
        ImageFormat::Gif => "gif".into(),
        ImageFormat::WebP => "webp".into(),
        ImageFormat::Bmp => "bmp".into(),
        other => other
            .extensions_str()
            .first()
            .map_or_else(|| format!("{other:?}").to_lowercase(), |e| (*e).to_owned()),
    }
}

/// The image as 8-bit RGB; transparent pixels are laid over white, not black.
fn to_rgb(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let (c, a) = (u32::from(c), u32::from(a));
            // Rounded c·α + 255·(1−α), in 0..=255.
            u8::try_from((c * a + 255 * (255 - a) + 127) / 255).unwrap_or(u8::MAX)
        };
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

fn jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .map_err(|e| format!("could not encode the JPEG: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgba};

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn dimensions(jpeg: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn transparent_pixels_become_white() {
        let img = ImageBuffer::from_fn(4, 4, |x, _| {
            if x < 2 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([10, 20, 30, 255])
            }
        });
        let rgb = to_rgb(DynamicImage::ImageRgba8(img));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(3, 3).0, [10, 20, 30]);
    }

    #[test]
    fn rgba_png_becomes_jpeg() {
        let img = ImageBuffer::from_fn(300, 100, |x, _| Rgba([200, 0, 0, (x % 256) as u8]));
        let png = encode(DynamicImage::ImageRgba8(img), ImageFormat::Png);
        let out = process(&png).unwrap();
        assert_eq!(
            (out.width, out.height, out.format.as_str()),
            (300, 100, "png")
        );
        assert_eq!(dimensions(&out.thumbnail), (200, 200));
        assert_eq!(dimensions(&out.medium), (300, 100));
    }

    #[test]
    fn formats_are_guessed_from_content() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(10, 10, image::Rgb([1, 2, 3])));
        for (format, name) in [
            (ImageFormat::Png, "png"),
            (ImageFormat::Jpeg, "jpeg"),
            (ImageFormat::Gif, "gif"),
            (ImageFormat::Bmp, "bmp"),
        ] {
            let out = process(&encode(img.clone(), format)).unwrap();
            assert_eq!(out.format, name);
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let why = process(b"definitely not an image").unwrap_err();
        assert!(why.contains("not in a supported image format"), "{why}");
        // A PNG signature followed by garbage is recognised, then fails to decode.
        let mut broken = b"\x89PNG\r\n\x1a\n".to_vec();
        broken.extend_from_slice(&[0; 64]);
        let why = process(&broken).unwrap_err();
        assert!(why.contains("png"), "{why}");
        assert!(process(&[]).is_err());
    }

    #[test]
    fn output_is_deterministic() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let png = encode(img, ImageFormat::Png);
        assert_eq!(process(&png).unwrap(), process(&png).unwrap());
    }
}
