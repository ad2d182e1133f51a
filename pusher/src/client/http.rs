//! HTTP details of talking to a registry: auth challenges, `Retry-After`,
//! and turning failed answers into [`PushError`]s with the registry's own
//! OCI error message.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Response, StatusCode};

use super::{ERROR_BODY_CAP, RegistryClient};
use crate::error::PushError;

/// Parses `Bearer realm="...",service="...",scope="..."`.
pub(super) fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let (kind, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_owned());
        rest = remainder.trim_start_matches(',').trim();
    }
    (kind.to_owned(), params)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries and
/// is treated as absent).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

pub(super) fn status_error(what: &str, status: StatusCode) -> PushError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PushError::Auth(format!(
            "{what}: the registry answered {status}; check the credentials"
        )),
        _ => PushError::Registry(format!("{what}: the registry answered {status}")),
    }
}

impl RegistryClient {
    /// An error from a failed upload or manifest PUT, with the registry's
    /// OCI error message when it sent one. At most [`ERROR_BODY_CAP`]
    /// bytes of the body are read: a registry that answers a gigabyte
    /// costs 64 KiB.
    pub(super) async fn refusal(&self, resp: Response) -> PushError {
        let status = resp.status();
        let text = match self.read_capped(resp, ERROR_BODY_CAP).await {
            Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => e.into_push("reading the error answer").to_string(),
        };
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("errors")?.get(0)?.clone();
                Some(format!(
                    "{}: {}",
                    e.get("code")?.as_str()?,
                    e.get("message").and_then(|m| m.as_str()).unwrap_or("")
                ))
            })
            .unwrap_or(text);
        // Shown on a terminal: no control characters, at most 200 of them.
        let detail: String = detail
            .chars()
            .take(200)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let detail = match detail.trim() {
            "" => String::new(),
            text => format!(": {text}"),
        };
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                PushError::Auth(format!("the registry refused the push ({status}){detail}"))
            }
            // Not a refusal of what we sent: the registry asks us to slow
            // down.
            StatusCode::TOO_MANY_REQUESTS => {
                PushError::Registry(format!("the registry answered {status}{detail}"))
            }
            s if s.is_client_error() => {
                PushError::Rejected(format!("the registry refused ({status}){detail}"))
            }
            _ => PushError::Registry(format!("the registry answered {status}{detail}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (kind, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:rbee/x:pull,push""#,
        );
        assert_eq!(kind, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:rbee/x:pull,push");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
