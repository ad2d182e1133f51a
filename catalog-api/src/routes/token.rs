//! `GET /token` (docker registry token authentication) and the public
//! keys at `GET /token/jwks.json`.
//!
//! Credentials: HTTP Basic with the key as password and any user name (so
//! `docker login`, `skopeo login`, `oras login` and docker's config.json
//! work), or `Authorization: Bearer <key>`. No credentials: an anonymous
//! token (pull on public namespaces). Wrong credentials: 401.
//!
//! Rate limiting of this route is a layer added where the routes are
//! assembled (`server.rs`), not here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rbee_auth::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::tokens::TokenError;

/// The longest secret looked up; real keys are far shorter.
const MAX_SECRET_LEN: usize = 512;

/// The token answer, as Docker's specification writes it (`token` and
/// its OAuth2 alias `access_token` are the same JWT).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// The bearer token for the registry.
    pub token: String,
    /// The same token (OAuth2 clients read this name).
    pub access_token: String,
    /// Seconds the token stays valid.
    pub expires_in: u64,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
}

#[utoipa::path(
    get,
    path = "/token",
    tag = "tokens",
    params(
        ("service" = Option<String>, Query, description = "The registry service the client names. Informational: every token's `aud` is this service's own name, so a token can never open another service"),
        ("scope" = Option<String>, Query, max_length = 255, pattern = r"^(|registry:catalog:\*|repository:[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*:(?:pull|push|delete)(?:,(?:pull|push|delete))*)$", description = "Repeatable: `repository:NAME:pull,push` or `registry:catalog:*` (an empty scope asks for nothing)"),
    ),
    responses(
        (status = 200, description = "A token granting what was asked and is allowed (possibly nothing)", body = TokenAnswer),
        (status = 400, description = "`Bad request`: a malformed scope", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: the credentials are not valid", body = ErrorBody),
        (status = 429, description = "`Too many requests` from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`Service unavailable`: the credential store failed; try again later", body = ErrorBody),
    )
)]
/// `GET /token`.
pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let tokens = &state.tokens;
    let query = query.unwrap_or_default();
    let mut scopes = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "scope" {
            scopes.push(value.into_owned());
        }
    }
    let scopes = Scope::parse_all(scopes.iter().map(String::as_str))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let secret = secret(&headers)?;
    let issued = tokens
        .token(secret.as_deref(), &scopes)
        .await
        .map_err(|e| match e {
            TokenError::BadCredentials => ApiError::BadCredentials,
            TokenError::Lookup(e) => ApiError::Unavailable(e.to_string()),
            TokenError::Sign(e) => ApiError::Unavailable(e.to_string()),
        })?;
    tracing::debug!(jti = %issued.jti, scopes = scopes.len(), "token issued");
    let mut resp = Json(TokenAnswer {
        access_token: issued.token.clone(),
        token: issued.token,
        expires_in: issued.expires_in,
        issued_at: issued
            .issued_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[utoipa::path(
    get,
    path = "/token/jwks.json",
    tag = "tokens",
    responses(
        (status = 200, description = "The JWKS (RFC 7517) of the Ed25519 keys tokens are signed with: the signing key and, during a rotation, the previous one", content_type = "application/json", body = Object),
    )
)]
/// `GET /token/jwks.json`: the public keys tokens are signed with.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.tokens.jwks().to_owned(),
    )
        .into_response()
}

/// The presented secret: the Basic password (any user name) or the Bearer
/// value. A header that is there but unreadable is bad credentials, not
/// anonymous.
fn secret(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::BadCredentials)?;
    let (scheme, rest) = value.split_once(' ').ok_or(ApiError::BadCredentials)?;
    let secret = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| ApiError::BadCredentials)?;
        let decoded = String::from_utf8(decoded).map_err(|_| ApiError::BadCredentials)?;
        let (_user, password) = decoded.split_once(':').ok_or(ApiError::BadCredentials)?;
        password.to_owned()
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_owned()
    } else {
        return Err(ApiError::BadCredentials);
    };
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(ApiError::BadCredentials);
    }
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn secrets_come_from_basic_passwords_or_bearer_values() {
        let basic = base64::engine::general_purpose::STANDARD.encode("any:rbee_lic_x");
        assert_eq!(
            secret(&with(&format!("Basic {basic}"))).unwrap().as_deref(),
            Some("rbee_lic_x")
        );
        assert_eq!(
            secret(&with("Bearer rbee_pub_y")).unwrap().as_deref(),
            Some("rbee_pub_y")
        );
        assert_eq!(secret(&HeaderMap::new()).unwrap(), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nopassword");
        for bad in [
            "Basic !!!".to_owned(),
            format!("Basic {no_colon}"),
            "Digest x".into(),
            "Bearer".into(),
            format!("Bearer {}", "a".repeat(MAX_SECRET_LEN + 1)),
        ] {
            assert!(secret(&with(&bad)).is_err(), "{bad}");
        }
    }
}
