//! Registry auth for reads, answered lazily: a request goes out with what
//! is known for its scope; only a 401 leads to a token request (Bearer) or
//! to Basic credentials, which are then reused. So an anonymous registry
//! sees no `GET /v2/` probe at all, and a token registry one token request
//! per repository until the token expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::{self, HeaderValue};

use super::{MAX_TOKEN_BYTES, UpstreamError, body};

/// Past this many scopes, the token map starts over (bounds memory against
/// a catalog index naming endless repositories).
const MAX_SCOPES: usize = 10_000;

/// What the catalog sends to one registry.
pub struct Auth {
    /// `Basic <base64>` of the configured credentials.
    basic: Option<HeaderValue>,
    /// Set once the registry answered a Basic challenge: credentials go
    /// with every request from then on.
    basic_everywhere: AtomicBool,
    /// `Bearer <token>` by scope. A std mutex: never held across an await.
    tokens: Mutex<HashMap<String, HeaderValue>>,
    /// Serialises challenge answers, so that requests that met a 401
    /// together share one token request.
    answering: tokio::sync::Mutex<()>,
}

impl Auth {
    pub fn new(credentials: Option<(String, String)>) -> Self {
        let basic = credentials.and_then(|(user, password)| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Auth {
            basic,
            basic_everywhere: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            answering: tokio::sync::Mutex::new(()),
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.basic.is_some()
    }

    /// The `Authorization` to send for `scope`, if any is known.
    pub fn header_for(&self, scope: &str) -> Option<HeaderValue> {
        if self.basic_everywhere.load(Ordering::Relaxed) {
            return self.basic.clone();
        }
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned()
    }

    /// Answers a 401 `challenge` met while sending `sent` for `scope`.
    pub async fn answer(
        &self,
        http: &reqwest::Client,
        registry: &Url,
        scope: &str,
        challenge: Option<HeaderValue>,
        sent: Option<HeaderValue>,
    ) -> Result<(), UpstreamError> {
        let _one_at_a_time = self.answering.lock().await;
        if self.header_for(scope) != sent {
            // Another request answered the challenge while this one waited.
            return Ok(());
        }
        let challenge = challenge
            .as_ref()
            .and_then(|c| c.to_str().ok())
            .ok_or_else(|| refused("answered 401 without a WWW-Authenticate challenge"))?;
        let (kind, params) = parse_challenge(challenge);
        if kind.eq_ignore_ascii_case("basic") {
            if self.basic.is_none() {
                return Err(refused("needs credentials; none are configured"));
            }
            self.basic_everywhere.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(refused("asked for an unknown auth scheme"));
        }
        let realm = params
            .get("realm")
            .and_then(|r| Url::parse(r).ok())
            .filter(|r| matches!(r.scheme(), "http" | "https"))
            .ok_or_else(|| refused("sent a Bearer challenge without a usable realm"))?;
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                q.append_pair("service", service);
            }
            // Ask for what this request needs, not what the challenge named.
            q.append_pair("scope", scope);
        }
        let mut req = http.get(url);
        // Credentials go to the token service only over TLS or to the
        // registry's own host: a registry cannot send them elsewhere in
        // the clear.
        if let Some(basic) = &self.basic
            && (realm.scheme() == "https" || realm.host_str() == registry.host_str())
        {
            req = req.header(header::AUTHORIZATION, basic.clone());
        }
        let resp = req.send().await.map_err(super::transport_error)?;
        if !resp.status().is_success() {
            return Err(refused(&format!(
                "token service answered {}",
                resp.status()
            )));
        }
        let bytes = body::read_capped(resp, MAX_TOKEN_BYTES, "the token answer").await?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| refused(&format!("token answer is not JSON: {e}")))?;
        let token = json
            .get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| refused("token answer has no token"))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| refused("token has characters not allowed in a header"))?;
        value.set_sensitive(true);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= MAX_SCOPES {
            tokens.clear();
        }
        tokens.insert(scope.to_owned(), value);
        Ok(())
    }
}

fn refused(why: &str) -> UpstreamError {
    UpstreamError::Unavailable(format!("registry auth failed: the registry {why}"))
}

/// Parses `Bearer realm="...",service="...",scope="..."`.
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let (kind, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        params.insert(key, value.to_owned());
        rest = remainder.trim_start_matches(',').trim();
    }
    (kind.to_owned(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (kind, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:rbee/x:pull""#,
        );
        assert_eq!(kind, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:rbee/x:pull");
        let (kind, p) = parse_challenge(r#"Basic realm="x""#);
        assert_eq!((kind.as_str(), p["realm"].as_str()), ("Basic", "x"));
    }
}
