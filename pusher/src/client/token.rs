//! Answering a registry's 401 challenge: Basic with the credentials as
//! they are, or docker token auth (a token from the challenge's `realm`).
//!
//! The realm is a URL the registry names, so it decides where the
//! credentials would go. They are sent only to a realm that is the
//! registry's own origin, an `https://` realm on the registry's host, or a
//! host the publisher trusted with `--trust-token-realm` (Docker Hub's
//! `auth.docker.io`, for one). Anything else gets nothing.

use reqwest::Url;
use reqwest::header::{self, HeaderValue};

use super::RegistryClient;
use super::host_of;
use super::http::parse_challenge;
use super::transport::sensitive;
use crate::error::PushError;

/// The most of a token answer that is read.
const TOKEN_ANSWER_CAP: usize = 64 << 10;

impl RegistryClient {
    /// True when the credentials may be sent to the token service at
    /// `realm`.
    pub(super) fn realm_trusted(&self, realm: &Url) -> bool {
        let same_origin = self.is_registry_origin(realm);
        let same_host_https = realm.scheme() == "https" && realm.host_str() == self.base.host_str();
        let configured = self.trusted_realms.iter().any(|trusted| {
            trusted.eq_ignore_ascii_case(&host_of(realm))
                || realm
                    .host_str()
                    .is_some_and(|h| trusted.eq_ignore_ascii_case(h))
        });
        same_origin || same_host_https || configured
    }

    /// Answers a 401 challenge for `scope`, remembering the
    /// `Authorization` value to send from now on.
    pub(super) async fn authenticate(
        &self,
        scope: &str,
        challenge: Option<&HeaderValue>,
    ) -> Result<(), PushError> {
        let challenge = challenge.and_then(|c| c.to_str().ok()).ok_or_else(|| {
            PushError::Auth("registry answered 401 without a WWW-Authenticate challenge".into())
        })?;
        let (kind, params) = parse_challenge(challenge);
        let value = if kind.eq_ignore_ascii_case("basic") {
            self.credentials.basic_header().ok_or_else(|| {
                PushError::Auth("the registry needs credentials; none were given".into())
            })?
        } else {
            let realm = params.get("realm").ok_or_else(|| {
                PushError::Auth(format!("Bearer challenge without realm: {challenge}"))
            })?;
            self.bearer_token(realm, params.get("service"), scope)
                .await?
        };
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_owned(), sensitive(value));
        Ok(())
    }

    /// A token for `scope` from the token service at `realm`, with the
    /// credentials when that service may have them; `Bearer <token>`.
    async fn bearer_token(
        &self,
        realm: &str,
        service: Option<&String>,
        scope: &str,
    ) -> Result<HeaderValue, PushError> {
        let chosen = self.token_service.clone();
        let mut url = match &chosen {
            Some(url) => url.clone(),
            None => Url::parse(realm)
                .map_err(|e| PushError::Auth(format!("bad token realm {realm}: {e}")))?,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PushError::Auth(format!(
                "token realm {url} is not an http(s) URL"
            )));
        }
        let credentials = self.credentials.basic_header();
        if credentials.is_some() && chosen.is_none() && !self.realm_trusted(&url) {
            return Err(PushError::Auth(format!(
                "the registry sends us to the token service {} on another origin; \
                 credentials are not sent there unless you trust it with \
                 --trust-token-realm {} (RBEE_PUSHER_TRUST_TOKEN_REALM)",
                url.origin().ascii_serialization(),
                host_of(&url)
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            // Ask for what this request needs, not what the challenge
            // happened to name.
            q.append_pair("scope", scope);
        }
        let mut req = self
            .http
            .get(url)
            .build()
            .map_err(|e| PushError::Auth(format!("token request: {e}")))?;
        if let Some(basic) = credentials {
            req.headers_mut()
                .insert(header::AUTHORIZATION, sensitive(basic));
        }
        *req.timeout_mut() = Some(self.timeouts.request);
        let resp = self
            .execute(req, None)
            .await
            .map_err(|e| PushError::Auth(e.into_push("token request failed").to_string()))?;
        if !resp.status().is_success() {
            return Err(PushError::Auth(format!(
                "token service refused the credentials ({})",
                resp.status()
            )));
        }
        let body = self
            .read_document(resp, TOKEN_ANSWER_CAP, "the token answer")
            .await?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| PushError::Auth(format!("token answer is not JSON: {e}")))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| PushError::Auth("token answer has no token".into()))?;
        HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| PushError::Auth("token has characters not allowed in a header".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RegistryClient, RetryPolicy};
    use crate::auth::Credentials;
    use reqwest::Url;

    fn client(base: &str) -> RegistryClient {
        RegistryClient::new(
            Url::parse(base).unwrap(),
            Credentials::basic("ci", "s3cret"),
            RetryPolicy::default(),
        )
        .unwrap()
    }

    #[test]
    fn which_token_realms_get_the_credentials() {
        let ghcr = client("https://ghcr.io");
        let trusted =
            |c: &RegistryClient, realm: &str| c.realm_trusted(&Url::parse(realm).unwrap());
        // The registry's origin, and https on its host (any port).
        assert!(trusted(&ghcr, "https://ghcr.io/token"));
        assert!(trusted(&ghcr, "https://ghcr.io:8443/token"));
        // Plain http on its host, or another host: not without the flag.
        assert!(!trusted(&ghcr, "http://ghcr.io/token"));
        assert!(!trusted(&ghcr, "https://auth.example/token"));
        assert!(!trusted(&ghcr, "https://ghcr.io.evil/token"));
        let hub = client("https://registry-1.docker.io")
            .trust_token_realms(["auth.docker.io".to_owned(), "127.0.0.1:9000".to_owned()]);
        assert!(trusted(&hub, "https://auth.docker.io/token"));
        assert!(trusted(&hub, "http://127.0.0.1:9000/token"));
        assert!(!trusted(&hub, "http://127.0.0.1:9001/token"));
        assert!(!trusted(&hub, "https://docker.io/token"));
        // A local registry over http: its own origin is trusted.
        let local = client("http://127.0.0.1:5000");
        assert!(trusted(&local, "http://127.0.0.1:5000/token"));
        assert!(!trusted(&local, "http://127.0.0.1:5001/token"));
    }
}
