//! Running the registry: opening storage, the start-up clean-up, the
//! periodic purge of stale uploads, and serving HTTP until shutdown, with
//! the [`ServerLimits`] every server of this workspace applies.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::config::RegistryConfig;
use crate::limits::{BodyBudget, IdleTimeoutBody, ServerLimits};
use crate::registry::Registry;
use crate::storage::{FsStorage, S3Storage, Storage};
use crate::uploads::purge_interval;

impl Registry {
    /// Opens the registry described by `config` (on the filesystem, or in
    /// its S3 bucket, which must answer) and purges upload sessions that
    /// expired while it was down.
    pub async fn open(config: RegistryConfig) -> io::Result<Arc<Registry>> {
        let registry = Self::open_storage(config).await?;
        match registry.purge_expired_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "removed expired upload sessions"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired upload sessions"),
        }
        Ok(registry)
    }

    /// Opens the registry described by `config` like [`Registry::open`],
    /// without purging anything (`rbee-registry gc` purges itself, and
    /// reports what).
    pub async fn open_storage(config: RegistryConfig) -> io::Result<Arc<Registry>> {
        let storage: Arc<dyn Storage> = match &config.s3 {
            None => Arc::new(FsStorage::open(&config.data_dir)?),
            Some(options) => {
                let s3 = S3Storage::new(options).map_err(io::Error::other)?;
                s3.check().await.map_err(|e| {
                    io::Error::other(format!(
                        "the bucket cannot be reached or listed (check the endpoint, \
                         region, credentials and bucket name): {e}"
                    ))
                })?;
                Arc::new(s3)
            }
        };
        Ok(Arc::new(Registry::new(storage, config)))
    }
}

/// Purges expired upload sessions every so often, for as long as the
/// registry lives.
pub fn spawn_upload_purge(registry: &Arc<Registry>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(registry);
    let every = purge_interval(registry.config().upload_ttl);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(registry) = weak.upgrade() else {
                break;
            };
            if let Err(e) = registry.purge_expired_uploads().await {
                tracing::warn!(error = %e, "upload purge failed");
            }
        }
    })
}

/// Serves `registry` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let budget = BodyBudget::new(registry.config().limits.buffered_body_bytes);
    serve_with_budget(listener, registry, budget, shutdown).await
}

async fn serve_with_budget(
    listener: TcpListener,
    registry: Arc<Registry>,
    budget: BodyBudget,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let purge = spawn_upload_purge(&registry);
    let limits = registry.config().limits.clone();
    let app = crate::api::router(registry);
    let result = serve_router(listener, app, &limits, budget, shutdown).await;
    purge.abort();
    result
}

/// Serves `app` on `listener` over HTTP/1.1 within `limits` until
/// `shutdown` completes, then waits for open requests to finish, at most
/// `limits.shutdown_grace`.
///
/// This is `axum::serve` plus what it lacks: a cap on connections (past
/// it, accepting pauses and new connections wait in the listen queue), a
/// header read timeout (hyper's, which needs a timer), an idle timeout on
/// every request body, and the shared [`BodyBudget`] and the peer's
/// address (`ConnectInfo<SocketAddr>`) in every request's extensions
/// (`budget`, normally `limits.buffered_body_bytes` large).
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    limits: &ServerLimits,
    budget: BodyBudget,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses (HEAD, upload acknowledgements) must not wait for
        // Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let budget = budget.clone();
        let idle = limits.body_idle_timeout;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req: Request<_> = req.map(|body| IdleTimeoutBody::new(body, idle));
            req.extensions_mut().insert(budget.clone());
            // The peer, for the events' request context and the access gate's
            // development switch (axum's type, so
            // handlers can also extract it).
            req.extensions_mut().insert(ConnectInfo(peer));
            // A `Router` is always ready, so it is called without `poll_ready`.
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(req).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = limits.shutdown_grace.as_secs_f64(),
            "open requests did not finish within the shutdown grace; dropping them"
        );
    }
    Ok(())
}

/// Handles a failed `accept`. Errors of one connection are skipped; others
/// (such as running out of file descriptors) are logged and accepting
/// pauses briefly, as `axum::serve` does, instead of spinning.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A registry serving on a background task, for tests and embedding.
#[derive(Debug)]
pub struct RunningRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The registry itself (subscribe to its events here).
    pub registry: Arc<Registry>,
    /// The memory budget of buffered request bodies, to watch it drain
    /// and refill.
    pub body_budget: BodyBudget,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningRegistry {
    /// Opens `config` and serves it on `addr` (use port 0 for any free port).
    pub async fn start(config: RegistryConfig, addr: SocketAddr) -> io::Result<Self> {
        let registry = Registry::open(config).await?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let body_budget = BodyBudget::new(registry.config().limits.buffered_body_bytes);
        let task = tokio::spawn(serve_with_budget(
            listener,
            registry.clone(),
            body_budget.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(RunningRegistry {
            addr,
            registry,
            body_budget,
            stop: Some(stop),
            task,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

/// Caps glibc's malloc arenas. Blob reads allocate their buffers on
/// blocking threads and free them on runtime threads; with glibc's default
/// of eight arenas per core each thread's pool keeps freed buffers, which
/// doubled the peak RSS of four concurrent 1 GiB pulls in the benchmark
/// (to ~70 MiB) for no speed gain. Two arenas hold it near 20 MiB.
/// Binaries call this first thing in `main`.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[expect(unsafe_code, reason = "mallopt has no safe wrapper")]
    // SAFETY: called before any other thread exists; mallopt only sets a
    // tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The `main` of every server binary: caps malloc arenas before any thread
/// exists, starts the logs ([`init_logs`]), and runs `body` on a
/// multi-threaded runtime.
pub fn run_binary<F>(body: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    limit_malloc_arenas();
    init_logs();
    tokio::runtime::Runtime::new()?.block_on(body)
}

/// Logs to stderr (stdout stays for a command's output), filtered by
/// `RBEE_LOG` (an `EnvFilter`, default `info`), as text or, with
/// `RBEE_LOG_FORMAT=json`, one JSON object per line (the request's span,
/// with its id, under `span`). Colour only when stderr is a terminal and
/// `NO_COLOR` is unset.
pub fn init_logs() {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RBEE_LOG").unwrap_or_else(|_| "info".into());
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let format = std::env::var("RBEE_LOG_FORMAT").unwrap_or_default();
    match format.as_str() {
        "json" => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        "" | "text" => logs.with_ansi(ansi).init(),
        other => {
            logs.with_ansi(ansi).init();
            tracing::warn!(
                RBEE_LOG_FORMAT = other,
                "unknown log format (`text` or `json`); writing text"
            );
        }
    }
}

/// Makes sure `dir` is a folder this process can write, creating it if
/// missing, with errors that name the folder and say what is wrong (the
/// bare OS errors were "File exists (os error 17)" for a data dir that is
/// a file, and "Permission denied" without a path). `what` names it in
/// messages, e.g. `data dir (--data-dir)`.
pub fn check_data_dir(dir: &std::path::Path, what: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            anyhow::bail!("the {what} {shown} exists and is not a folder")
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the {what} {shown}"))?,
        Err(e) => return Err(e).with_context(|| format!("cannot read the {what} {shown}")),
    }
    let probe = dir.join(format!(".rbee-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("cannot write in the {what} {shown}"))?;
    let _ = std::fs::remove_file(&probe);
    std::fs::read_dir(dir)
        .map(drop)
        .with_context(|| format!("cannot read the {what} {shown}"))
}

/// Completes on Ctrl-C or SIGTERM, for graceful shutdown of a binary.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
