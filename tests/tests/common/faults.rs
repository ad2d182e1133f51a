//! A fault-injecting HTTP proxy in front of a real registry: it forwards
//! every request, except those a rule matches, which it answers with an
//! error (or forwards and then reports as failed). It records what it saw,
//! so tests can check how a client retried.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::TryStreamExt;

/// What to do to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status without forwarding, with `Retry-After` seconds.
    Refuse(u16, Option<u64>),
    /// Forward it, then answer 502 as if the answer was lost on the way.
    LoseAnswer,
}

/// A fault for the `nth` (1-based) request of `method` whose path
/// contains `path_part`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Method,
    pub path_part: &'static str,
    pub nth: usize,
    pub fault: Fault,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub content_range: Option<String>,
    pub at: Instant,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

struct Shared {
    upstream: String,
    rules: Vec<Rule>,
    seen: Mutex<Vec<Seen>>,
    http: reqwest::Client,
}

/// A running proxy.
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) on a free port.
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rules,
            seen: Mutex::new(Vec::new()),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultProxy { url, shared, task }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let fault = {
        let mut seen = shared.seen.lock().unwrap();
        let fault = shared.rules.iter().find_map(|rule| {
            let matches = |s: &Seen| s.method == rule.method && s.path.contains(rule.path_part);
            let earlier = seen.iter().filter(|s| matches(s)).count();
            (method == rule.method
                && path_and_query.contains(rule.path_part)
                && earlier + 1 == rule.nth)
                .then_some(rule.fault)
        });
        seen.push(Seen {
            method: method.clone(),
            path: path_and_query.clone(),
            content_range: req
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            at: Instant::now(),
            fault,
        });
        fault
    };
    if let Some(Fault::Refuse(status, retry_after)) = fault {
        // Read the body like a server that refuses it would, then answer.
        let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
        let mut resp = Response::new(Body::from(
            r#"{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}"#,
        ));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&secs.to_string()).unwrap(),
            );
        }
        return resp;
    }
    let mut out = shared
        .http
        .request(method, format!("{}{path_and_query}", shared.upstream));
    for (name, value) in req.headers() {
        if name != "host" {
            out = out.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let upstream = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            let mut resp = Response::new(Body::from(e.to_string()));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            return resp;
        }
    };
    if fault == Some(Fault::LoseAnswer) {
        let _ = upstream.bytes().await;
        let mut resp = Response::new(Body::from("answer lost"));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        return resp;
    }
    let mut resp = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        resp = resp.header(name, value);
    }
    resp.body(Body::from_stream(
        upstream.bytes_stream().map_err(std::io::Error::other),
    ))
    .unwrap()
}
