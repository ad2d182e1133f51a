//! Assembling and running the catalog server: the embedded registry under
//! `/v2/` (unless an external one is configured), the catalog routes, and
//! the layers every response passes through.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use rbee_registry::limits::BodyBudget;
use rbee_registry::server::serve_router;
use rbee_registry::{Action, Registry, RegistryConfig, Target};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CatalogConfig;
use crate::error::ApiError;
use crate::routes::{admin, legacy, licenses, ops, stats, token, v1, webhook};
use crate::state::AppState;
use crate::tokens::TokenService;

/// A catalog serving on a background task.
#[derive(Debug)]
pub struct RunningCatalog {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The embedded registry, when there is one.
    pub registry: Option<Arc<Registry>>,
    /// The shared state (the catalog and its caches).
    pub state: Arc<AppState>,
    /// The memory budget of buffered request bodies (webhook payloads and
    /// the embedded registry's manifests), to watch it drain and refill.
    pub body_budget: BodyBudget,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
    /// Tasks that follow registry events and keep the view fresh; they
    /// end at shutdown, and stopping waits for them, so that a stopped
    /// catalog has let go of its registry and database.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningCatalog {
    /// The base URL, e.g. `http://127.0.0.1:8787`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn stop(mut self) -> io::Result<()> {
        // Open requests waiting on the registry get their answer now.
        self.state.catalog.shutdown();
        self.state.analytics.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.task).await.map_err(io::Error::other)?;
        for task in self.background.drain(..) {
            let _ = task.await;
        }
        served
    }

    /// Serves until `shutdown` completes.
    pub async fn wait(mut self, shutdown: impl std::future::Future<Output = ()>) -> io::Result<()> {
        shutdown.await;
        self.state.catalog.shutdown();
        self.state.analytics.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.task).await.map_err(io::Error::other)?;
        for task in self.background.drain(..) {
            let _ = task.await;
        }
        served
    }
}

/// Security headers on every response. JSON and plain text need nothing,
/// so the default CSP forbids everything; the web pages set their own
/// (`web::CSP`: this origin's stylesheet and script only), which is kept.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn catalog_routes(state: Arc<AppState>, cors_origins: &[String]) -> Router {
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .map(|o| o.trim())
        // `none` is how the environment variable says "no origin": clap
        // takes an empty variable for an unset one.
        .filter(|o| !o.is_empty() && *o != "none")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::HEAD])
        // The marketplace site sends `Content-Type` even on GET, which
        // makes the browser ask first.
        .allow_headers([
            header::AUTHORIZATION,
            header::IF_NONE_MATCH,
            header::CONTENT_TYPE,
        ])
        // Browsers may keep a preflight answer this long (as rbee's does).
        .max_age(std::time::Duration::from_secs(3600))
        // The marketplace's scripts read these to revalidate and to show
        // that data is stale.
        .expose_headers([header::ETAG, header::WARNING, header::CACHE_CONTROL]);
    // Routes that check secrets or hand out builds: one bucket per client
    // address across all of them.
    let limited = state.rate_limiter.wrap(
        Router::new()
            .route("/v1/workers/{id}/{version}/download", get(v1::download))
            .route("/v1/workers/{id}/{version}/blob", get(v1::blob))
            .route("/v1/licenses/verify", post(licenses::verify))
            .route("/token", get(token::token))
            .nest("/admin", admin::routes()),
    );
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/workers", get(legacy::list))
        .route("/workers/{id}", get(legacy::get))
        .route("/workers/{id}/PKGBUILD", get(legacy::pkgbuild))
        .route("/v1/workers", get(v1::list))
        .route("/v1/workers/{id}", get(v1::get))
        .route("/v1/workers/{id}/versions", get(v1::versions))
        .route("/v1/workers/{id}/stats", get(stats::worker))
        .route("/v1/stats/overview", get(stats::overview))
        .merge(limited)
        .route("/v1/webhooks/registry", post(webhook::registry_events))
        .route("/token/jwks.json", get(token::jwks))
        // The web pages: `/`, `/worker/{id}`, `/stats`, `/assets/...`.
        .merge(crate::web::routes())
        // Covers the routes above only (not the registry's, merged later);
        // axum still adds the `Allow` header.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound })
        .layer(cors)
        .with_state(state)
}

/// Starts the catalog on `listener` as `config` says.
pub async fn start(config: CatalogConfig, listener: TcpListener) -> io::Result<RunningCatalog> {
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    // Licensed downloads and token requests look their key up in memory
    // for a few seconds (`rbee_store::CacheConfig`); revocations through
    // this server's store take effect at once.
    let store = crate::admin::open_store(&config)
        .await
        .map_err(|e| io::Error::other(error_chain(&e)))?
        .with_credential_cache(rbee_store::CacheConfig::default());
    tracing::info!(database = store.db().dialect(), "catalog database open");
    if let Some(path) = crate::admin::ensure_admin_key(&store, &config.data_dir).await? {
        tracing::warn!(
            path = %path.display(),
            "created the admin key (for /admin and the token service); it is in this file only"
        );
    }
    let credentials = config
        .tokens
        .credentials
        .clone()
        .unwrap_or_else(|| Arc::new(store.clone()));
    let tokens = Arc::new(
        TokenService::open(&config.tokens, credentials, &config.data_dir)
            .map_err(io::Error::other)?,
    );
    let (registry, upstream_url, registry_public_url) = match &config.registry_url {
        Some(url) => (None, url.clone(), url.trim_end_matches('/').to_owned()),
        None => {
            let mut registry_config = RegistryConfig::new(config.data_dir.join("registry"));
            registry_config.limits = config.limits.clone();
            registry_config.s3 = config.registry_s3.clone();
            registry_config.presigned_redirects = config.presigned_redirects;
            registry_config.access = embedded_access(&config, &tokens, &public_url);
            rbee_registry::gate::announce(&registry_config.access);
            let registry = Registry::open(registry_config).await?;
            (Some(registry), format!("http://{addr}"), public_url.clone())
        }
    };
    let state = Arc::new(AppState::new(
        &config,
        registry.as_ref(),
        &upstream_url,
        public_url,
        registry_public_url,
        store,
        tokens,
    )?);

    let mut app = catalog_routes(state.clone(), &config.cors_origins);
    let mut background = Vec::new();
    if let Some(registry) = &registry {
        app = app.merge(rbee_registry::api::routes(registry.clone()));
        background.push(spawn_invalidation(registry, state.clone()));
        if config.analytics.enabled {
            registry
                .events()
                .add_sink(Arc::new(crate::analytics::RegistrySink(
                    state.analytics.clone(),
                )));
        }
    }
    background.extend(crate::analytics::spawn_writer(state.clone()));
    background.extend(spawn_view(&state, &config.ttls).await);
    // `Router::layer` wraps each route after routing, so the metrics
    // middleware sees the matched route template (registry routes too).
    let app = app
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(middleware::from_fn(security_headers));
    // Request ids and the access log, around everything (the registry's
    // routes too).
    let app = rbee_registry::access_log::layer(app);

    let purge = registry
        .as_ref()
        .map(rbee_registry::server::spawn_upload_purge);
    let buckets = state.rate_limiter.spawn_cleanup(Duration::from_secs(60));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = config.limits.clone();
    let body_budget = BodyBudget::new(limits.buffered_body_bytes);
    let budget = body_budget.clone();
    let task = tokio::spawn(async move {
        let result = serve_router(listener, app, &limits, budget, async move {
            let _ = stopped.await;
        })
        .await;
        if let Some(purge) = purge {
            purge.abort();
        }
        if let Some(buckets) = buckets {
            buckets.abort();
        }
        result
    });
    Ok(RunningCatalog {
        addr,
        registry,
        state,
        body_budget,
        stop: Some(stop),
        task,
        background,
    })
}

/// The embedded registry's access rules: it trusts this catalog's token
/// service, whose realm is `<public URL>/token`.
fn embedded_access(
    config: &CatalogConfig,
    tokens: &TokenService,
    public_url: &str,
) -> rbee_registry::gate::AccessConfig {
    rbee_registry::gate::AccessConfig {
        tokens: Some(rbee_registry::gate::TokenAuth {
            verifier: Arc::new(tokens.verifier()),
            realm: format!("{public_url}/token"),
            service: tokens.service().to_owned(),
        }),
        public: config.tokens.public.clone(),
        anonymous_pull: config.tokens.anonymous_pull,
        dev_open_loopback: config.tokens.dev_open_loopback,
    }
}

/// An error and its causes on one line (the store's errors keep the
/// driver's detail in `source()`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Drops cached data as soon as the embedded registry changes a manifest.
fn spawn_invalidation(
    registry: &Arc<Registry>,
    state: Arc<AppState>,
) -> tokio::task::JoinHandle<()> {
    let mut events = registry.events().subscribe();
    tokio::spawn(async move {
        let stopped = state.catalog.stopped();
        tokio::pin!(stopped);
        loop {
            let next = tokio::select! {
                next = events.recv() => next,
                () = &mut stopped => break,
            };
            match next {
                Ok(e)
                    if e.target == Target::Manifest
                        && matches!(e.action, Action::Push | Action::Delete) =>
                {
                    state.catalog.heard(&e.repository);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    state.catalog.heard_everything()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// The longest start waits to read the listings from the view.
const WARM_LIMIT: Duration = Duration::from_secs(2);

/// Opens the catalog's view in the database (an empty one is built in the
/// background; see `domain/view`), reads the listings from a built one
/// into the caches (at most [`WARM_LIMIT`]), and keeps it fresh until shutdown:
/// the catalog index's digest is compared every index TTL, and every
/// stored release with the registry a second after start and every
/// metadata TTL (as often as the walk would reread a cached release).
async fn spawn_view(
    state: &Arc<AppState>,
    ttls: &crate::catalog::CacheTtls,
) -> Option<tokio::task::JoinHandle<()>> {
    let view = state.catalog.view()?;
    if let Err(e) = view.open().await {
        tracing::warn!(error = %error_chain(&e), "catalog view unreadable; listings walk the registry");
    }
    // Before the first request: a restarted catalog lists from memory.
    let warming = Instant::now();
    if tokio::time::timeout(WARM_LIMIT, state.catalog.warm_listings())
        .await
        .is_err()
    {
        tracing::warn!(limit = ?WARM_LIMIT, "reading the listings at start took too long; left to the first request");
    } else if view.is_ready() {
        tracing::debug!(took = ?warming.elapsed(), "listings read from the catalog view");
    }
    let (check_every, reconcile_every) = (ttls.index, ttls.metadata);
    let state = state.clone();
    Some(tokio::spawn(async move {
        state.catalog.run_view(check_every, reconcile_every).await
    }))
}
