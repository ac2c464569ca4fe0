//! URL previews (`/preview_url`): the server fetches a page someone linked and returns its
//! OpenGraph data. Off by default; when on, it only connects to public addresses (checked
//! after DNS resolution and on every redirect) unless the operator allow-listed a range, and
//! reads at most `url_preview_max_size` bytes within `url_preview_timeout_secs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use ruma::{ServerName, UserId};
use serde_json::{Map, Value, json};

use super::{IpRange, Service};
use crate::config::MediaConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::service::net::{IpPolicy, PolicyResolver, Refused};
use crate::service::now_millis;

/// How long a fetched preview is reused.
const CACHE_MS: u64 = 60 * 60 * 1000;
const MAX_REDIRECTS: usize = 5;

/// Resolves names and drops every address previews may not connect to.
fn blocked() -> Error {
    Error::forbidden("Previews of that address are not allowed (private, loopback or link-local)")
}

/// The HTTP client previews use.
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<IpPolicy>,
    max_size: u64,
}

impl Fetcher {
    pub fn new(config: &MediaConfig) -> Result<Self> {
        let policy = Arc::new(IpPolicy::public_only(
            config
                .url_preview_ip_range_allowlist
                .iter()
                .filter_map(|range| IpRange::parse(range))
                .collect(),
        ));
        let redirect_policy = Arc::clone(&policy);
        let client = reqwest::Client::builder()
            // A proxy would resolve names itself, out of reach of the address checks.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver::new(Arc::clone(&policy))))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if redirect_policy.refuses_literal(attempt.url()) {
                    let url = attempt.url().to_string();
                    attempt.error(Refused(url))
                } else {
                    attempt.follow()
                }
            }))
            .timeout(Duration::from_secs(config.url_preview_timeout_secs))
            .user_agent("Conclave URL preview (Matrix homeserver)")
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the preview HTTP client: {e}")))?;
        Ok(Self {
            client,
            policy,
            max_size: config.url_preview_max_size,
        })
    }

    /// Fetches a URL: (final URL, content type, at most `max_size` bytes of body).
    async fn fetch(&self, url: &str) -> Result<(reqwest::Url, Option<String>, Bytes)> {
        let url = reqwest::Url::parse(url).map_err(|_| Error::invalid_param("Not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid_param(
                "Only http and https URLs can be previewed",
            ));
        }
        if self.policy.refuses_literal(&url) {
            return Err(blocked());
        }
        let response = self.client.get(url).send().await.map_err(|e| {
            if is_blocked(&e) {
                blocked()
            } else {
                Error::with_status(
                    ErrorCode::Unknown,
                    http::StatusCode::BAD_GATEWAY,
                    format!("Could not fetch the URL: {e}"),
                )
            }
        })?;
        if !response.status().is_success() {
            return Err(Error::with_status(
                ErrorCode::Unknown,
                http::StatusCode::BAD_GATEWAY,
                format!("The URL answered {}", response.status()),
            ));
        }
        let final_url = response.url().clone();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Error::with_status(
                    ErrorCode::Unknown,
                    http::StatusCode::BAD_GATEWAY,
                    format!("Could not read the URL: {e}"),
                )
            })?;
            let limit = usize::try_from(self.max_size).unwrap_or(usize::MAX);
            let room = limit.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((final_url, content_type, Bytes::from(body)))
    }
}

/// Whether a request failed because every address was blocked.
fn is_blocked(error: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if e.is::<Refused>() || e.to_string().contains("may not connect to") {
            return true;
        }
        source = e.source();
    }
    false
}

impl Service {
    /// The preview of `url` for `user`: OpenGraph fields, with `og:image` stored as media.
    pub async fn preview(
        &self,
        fetcher: &Fetcher,
        server: &ServerName,
        user: &UserId,
        url: &str,
    ) -> Result<Value> {
        if let Some(cached) = self.url_preview.get_json::<Value>(url.as_bytes())?
            && cached["ts"]
                .as_u64()
                .is_some_and(|ts| ts + CACHE_MS > now_millis())
        {
            return Ok(cached["preview"].clone());
        }
        let (final_url, content_type, body) = fetcher.fetch(url).await?;
        let mime = content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let mut preview = Map::new();
        if mime.starts_with("image/") {
            self.attach_image(&mut preview, server, user, &mime, body)
                .await?;
        } else if mime == "text/html" || mime == "application/xhtml+xml" {
            let html = String::from_utf8_lossy(&body);
            for (key, value) in opengraph(&html) {
                preview.insert(key, Value::String(value));
            }
            let image_url = preview
                .get("og:image")
                .and_then(Value::as_str)
                .and_then(|image| final_url.join(image).ok());
            preview.remove("og:image");
            if let Some(image_url) = image_url
                && let Ok((_, image_type, image)) = fetcher.fetch(image_url.as_str()).await
            {
                let image_mime = image_type
                    .as_deref()
                    .and_then(|c| c.split(';').next())
                    .map(|c| c.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                if image_mime.starts_with("image/") {
                    self.attach_image(&mut preview, server, user, &image_mime, image)
                        .await?;
                }
            }
        } else {
            return Err(Error::not_found("The URL has no previewable content"));
        }
        let preview = Value::Object(preview);
        self.url_preview.insert(
            url.as_bytes(),
            &serde_json::to_vec(&json!({ "ts": now_millis(), "preview": preview }))?,
        )?;
        Ok(preview)
    }

    async fn attach_image(
        &self,
        preview: &mut Map<String, Value>,
        server: &ServerName,
        user: &UserId,
        mime: &str,
        image: Bytes,
    ) -> Result<()> {
        let dimensions = image::ImageReader::new(std::io::Cursor::new(&image[..]))
            .with_guessed_format()
            .ok()
            .and_then(|reader| reader.into_dimensions().ok());
        let size = image.len();
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(image) });
        let stored = self.write_stream(stream, u64::MAX).await?;
        let media_id = self.create(server, user, &stored, Some(mime.to_owned()), None)?;
        preview.insert(
            "og:image".into(),
            json!(format!("mxc://{server}/{media_id}")),
        );
        preview.insert("og:image:type".into(), json!(mime));
        preview.insert("matrix:image:size".into(), json!(size));
        if let Some((width, height)) = dimensions {
            preview.insert("og:image:width".into(), json!(width));
            preview.insert("og:image:height".into(), json!(height));
        }
        Ok(())
    }
}

/// OpenGraph properties of a page (`<meta property="og:…" content="…">`), with the page
/// title and description as fallbacks.
pub fn opengraph(html: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut description = None;
    let lower = html.to_ascii_lowercase();
    let mut rest = 0;
    while let Some(start) = lower[rest..].find("<meta") {
        let start = rest + start;
        let Some(end) = lower[start..].find('>') else {
            break;
        };
        let tag = &html[start..start + end];
        rest = start + end;
        let key = attribute(tag, "property").or_else(|| attribute(tag, "name"));
        let content = attribute(tag, "content");
        if let (Some(key), Some(content)) = (key, content) {
            let key = key.to_ascii_lowercase();
            if key.starts_with("og:") && !found.iter().any(|(k, _)| *k == key) {
                found.push((key, content));
            } else if key == "description" {
                description = Some(content);
            }
        }
    }
    if !found.iter().any(|(k, _)| k == "og:title")
        && let Some(start) = lower.find("<title")
        && let Some(open_end) = lower[start..].find('>')
        && let Some(close) = lower[start..].find("</title>")
        && open_end < close
    {
        let title = decode_entities(html[start + open_end + 1..start + close].trim());
        if !title.is_empty() {
            found.push(("og:title".into(), title));
        }
    }
    if !found.iter().any(|(k, _)| k == "og:description")
        && let Some(description) = description
    {
        found.push(("og:description".into(), description));
    }
    found
}

/// The value of `name="…"` (or single-quoted) in a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(position) = lower[from..].find(name) {
        let at = from + position;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        let quote = value.chars().next()?;
        let text = if quote == '"' || quote == '\'' {
            let inner = &value[1..];
            &inner[..inner.find(quote)?]
        } else {
            value
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()?
        };
        return Some(decode_entities(text));
    }
    None
}

fn decode_entities(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengraph_fields_and_fallbacks() {
        let html = r#"<html><head><title>Fallback &amp; title</title>
            <meta property="og:description" content="A &quot;quoted&quot; page">
            <meta name='description' content='ignored, og wins'>
            <META PROPERTY="og:image" CONTENT="/logo.png" />
            </head></html>"#;
        let og = opengraph(html);
        assert!(
            og.contains(&("og:title".into(), "Fallback & title".into())),
            "{og:?}"
        );
        assert!(og.contains(&("og:description".into(), "A \"quoted\" page".into())));
        assert!(og.contains(&("og:image".into(), "/logo.png".into())));
    }
}
