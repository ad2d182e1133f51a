//! Who asked: the part of a request that every event carries.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::header;
use serde::Serialize;

/// User agents longer than this are cut: the value is client-chosen and
/// ends up in every event (and, for analytics, in a database).
pub const MAX_USER_AGENT: usize = 256;

/// The subject an access gate verified (a token's `sub`, a license id),
/// put in the request's extensions before dispatch. [`RequestContext::of`]
/// takes it from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedSubject(pub String);

/// The request behind an event.
///
/// The client address is personal data: it is never logged (`Debug` shows
/// only whether there is one) and never serialised (a webhook sink gets no
/// address), only handed to in-process sinks, which are to keep nothing
/// but a keyed hash of it.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestContext {
    /// The peer's address, as the connection saw it.
    #[serde(skip)]
    pub client_addr: Option<IpAddr>,
    /// Who the request authenticated as, if anyone.
    pub subject: Option<String>,
    /// Whether the process read its own registry (the embedded catalog):
    /// such reads are not announced at all, and are never downloads.
    pub internal: bool,
    /// The `User-Agent` header, cut to [`MAX_USER_AGENT`] bytes.
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// The context of the process's own reads and writes.
    pub fn internal() -> Self {
        RequestContext {
            internal: true,
            ..RequestContext::default()
        }
    }

    /// The context of an HTTP request: the peer address `serve_router`
    /// recorded (axum's [`ConnectInfo`]), the [`AuthenticatedSubject`] an
    /// access gate recorded, and the user agent.
    pub fn of<B>(req: &http::Request<B>) -> Self {
        let client_addr = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            // `::ffff:192.0.2.1` and `192.0.2.1` are one client.
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
        let subject = req
            .extensions()
            .get::<AuthenticatedSubject>()
            .map(|s| s.0.clone());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                // `to_str` admits visible ASCII only, so any cut is a char boundary.
                ua[..ua.len().min(MAX_USER_AGENT)].to_owned()
            });
        RequestContext {
            client_addr,
            subject,
            internal: false,
            user_agent,
        }
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("client_addr", &self.client_addr.map(|_| "<redacted>"))
            .field("subject", &self.subject)
            .field("internal", &self.internal)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_comes_from_the_connection_the_gate_and_the_headers() {
        let mut req = http::Request::builder()
            .header(header::USER_AGENT, format!("oras/1.2 {}", "x".repeat(400)))
            .body(())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from((
            "::ffff:192.0.2.7".parse::<std::net::Ipv6Addr>().unwrap(),
            4321,
        ))));
        req.extensions_mut()
            .insert(AuthenticatedSubject("lic_01".into()));
        let ctx = RequestContext::of(&req);
        assert_eq!(ctx.client_addr, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(ctx.subject.as_deref(), Some("lic_01"));
        assert!(!ctx.internal);
        let ua = ctx.user_agent.as_deref().unwrap();
        assert!(ua.starts_with("oras/1.2 ") && ua.len() == MAX_USER_AGENT);

        let bare = RequestContext::of(&http::Request::new(()));
        assert_eq!(bare, RequestContext::default());
    }

    #[test]
    fn the_client_address_is_neither_logged_nor_serialised() {
        let ctx = RequestContext {
            client_addr: Some("192.0.2.7".parse().unwrap()),
            user_agent: Some("curl/8".into()),
            ..RequestContext::default()
        };
        let debug = format!("{ctx:?}");
        assert!(!debug.contains("192.0.2.7"), "{debug}");
        assert!(debug.contains("<redacted>") && debug.contains("curl/8"));
        let json = serde_json::to_string(&ctx).unwrap();
        assert!(!json.contains("192.0.2.7"), "{json}");
        assert!(json.contains("curl/8"));
    }
}
