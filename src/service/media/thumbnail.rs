//! Thumbnails: generated once per (media, size, method) with the `image` crate, on the
//! blocking pool, and stored like any other content.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};

/// How a thumbnail fits the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Within the box, aspect ratio kept.
    Scale,
    /// Fills the box exactly, cropping the overflow.
    Crop,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scale => "scale",
            Self::Crop => "crop",
        }
    }
}

/// The sizes thumbnails are made in (those Synapse makes, which clients are tuned to): a
/// request is served with the smallest at least as large as asked, so a handful of files
/// per image answers every request.
const SIZES: &[(u32, u32, Method)] = &[
    (32, 32, Method::Crop),
    (96, 96, Method::Crop),
    (320, 240, Method::Scale),
    (640, 480, Method::Scale),
    (800, 600, Method::Scale),
];

/// The stored size that answers a request for `width`×`height` by `method`.
pub fn pick_size(width: u32, height: u32, method: Method) -> (u32, u32, Method) {
    let candidates: Vec<(u32, u32, Method)> = SIZES
        .iter()
        .copied()
        .filter(|(_, _, m)| *m == method)
        .collect();
    candidates
        .iter()
        .copied()
        .find(|(w, h, _)| *w >= width && *h >= height)
        .or_else(|| candidates.last().copied())
        .unwrap_or((width, height, method))
}

/// Content types the thumbnailer reads.
pub fn can_thumbnail(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp"
    )
}

/// A generated thumbnail, or `None` when the original is already no larger than the box
/// (then the original is served).
pub struct Generated {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Decodes `original` (bounded in size and memory) and renders the thumbnail. Runs on the
/// blocking pool: decoding is CPU work.
pub fn generate(
    original: &Path,
    width: u32,
    height: u32,
    method: Method,
) -> Result<Option<Generated>> {
    let bad_image = |e: &dyn std::fmt::Display| {
        Error::with_status(
            crate::error::ErrorCode::Unknown,
            http::StatusCode::BAD_REQUEST,
            format!("The media cannot be thumbnailed: {e}"),
        )
    };
    let mut reader = ImageReader::open(original)
        .map_err(|e| Error::Internal(format!("media storage: {e}")))?
        .with_guessed_format()
        .map_err(|e| Error::Internal(format!("media storage: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let format = reader.format();
    let image = reader.decode().map_err(|e| bad_image(&e))?;
    let (original_width, original_height) = (image.width(), image.height());
    let thumbnail: DynamicImage = match method {
        Method::Scale => {
            if original_width <= width && original_height <= height {
                return Ok(None);
            }
            image.resize(width, height, FilterType::Triangle)
        }
        Method::Crop => {
            if original_width <= width && original_height <= height {
                return Ok(None);
            }
            image.resize_to_fill(
                width.min(original_width),
                height.min(original_height),
                FilterType::Triangle,
            )
        }
    };
    // Photographs stay JPEG; everything else (transparency, line art) becomes PNG.
    let (output, content_type) = if format == Some(ImageFormat::Jpeg) {
        (ImageFormat::Jpeg, "image/jpeg")
    } else {
        (ImageFormat::Png, "image/png")
    };
    let thumbnail = if output == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(thumbnail.to_rgb8())
    } else {
        thumbnail
    };
    let mut bytes = Vec::new();
    thumbnail
        .write_to(&mut Cursor::new(&mut bytes), output)
        .map_err(|e| Error::Internal(format!("thumbnail encoding failed: {e}")))?;
    Ok(Some(Generated {
        bytes,
        content_type,
        width: thumbnail.width(),
        height: thumbnail.height(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_the_smallest_sufficient_size() {
        assert_eq!(pick_size(30, 30, Method::Crop), (32, 32, Method::Crop));
        assert_eq!(pick_size(50, 50, Method::Crop), (96, 96, Method::Crop));
        assert_eq!(pick_size(500, 500, Method::Crop), (96, 96, Method::Crop));
        assert_eq!(
            pick_size(320, 240, Method::Scale),
            (320, 240, Method::Scale)
        );
        assert_eq!(
            pick_size(700, 100, Method::Scale),
            (800, 600, Method::Scale)
        );
        assert_eq!(
            pick_size(4000, 4000, Method::Scale),
            (800, 600, Method::Scale)
        );
    }
}
