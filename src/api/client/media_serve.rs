//! Sending stored media to clients: streamed from disk, with `Range` support and the headers
//! that stop a browser from treating user uploads as part of the web app (no sniffing, a
//! sandboxing CSP, `attachment` for anything not known to be safe inline).

use std::path::Path;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result};

/// Types a browser may show inline: they cannot run script in the server's origin.
const INLINE_TYPES: &[&str] = &[
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

const CSP: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
                   style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// What to send.
pub struct Served<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub content_type: Option<&'a str>,
    pub filename: Option<&'a str>,
}

/// A byte range of a file of `size` bytes requested with `Range: bytes=…`; `Err` when it
/// cannot be satisfied. Only single ranges are honoured (others get the whole file).
fn parse_range(value: &str, size: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let start: u64 = start.parse().ok()?;
        let end: u64 = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        if start >= size || start > end {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(range))
}

/// `Content-Disposition` value: inline for safe types, else attachment; with the file name
/// (RFC 6266 / 5987 encoding for non-ASCII names).
fn disposition(content_type: &str, filename: Option<&str>) -> String {
    let kind = if INLINE_TYPES.contains(&content_type) {
        "inline"
    } else {
        "attachment"
    };
    let Some(name) = filename.filter(|n| !n.is_empty()) else {
        return kind.to_owned();
    };
    let plain = name
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != ';' || c == ' ');
    if plain {
        format!("{kind}; filename=\"{name}\"")
    } else {
        let encoded: String =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        format!("{kind}; filename*=utf-8''{encoded}")
    }
}

pub async fn serve(served: Served<'_>, request_headers: &HeaderMap) -> Result<Response> {
    let io = |e: std::io::Error| Error::Internal(format!("media storage: {e}"));
    let content_type = served
        .content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let range = request_headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, served.size));

    let mut builder = Response::builder()
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(served.content_type.unwrap_or(&content_type))
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        )
        .header(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition(&content_type, served.filename))
                .unwrap_or(HeaderValue::from_static("attachment")),
        )
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header("Cross-Origin-Resource-Policy", "cross-origin")
        .header(header::CACHE_CONTROL, "private, max-age=86400")
        .header(header::ACCEPT_RANGES, "bytes");

    let (status, start, length) = match range {
        Some(Err(())) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", served.size))
                .body(Body::empty())
                .map_err(Error::internal);
        }
        Some(Ok((start, end))) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", served.size),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        None => (StatusCode::OK, 0, served.size),
    };
    let mut file = tokio::fs::File::open(served.path).await.map_err(io)?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(io)?;
    }
    let stream = ReaderStream::with_capacity(file.take(length), 64 * 1024);
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, length)
        .body(Body::from_stream(stream))
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition("image/png", Some("cat.png")),
            "inline; filename=\"cat.png\""
        );
        assert_eq!(disposition("text/html", None), "attachment");
        assert_eq!(
            disposition("application/pdf", Some("résumé.pdf")),
            "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%2Epdf"
        );
    }
}
