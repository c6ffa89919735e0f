//! `carma serve`: recourse for an online decision system, over HTTP (docs/SERVING.md).
//!
//! One model file is loaded and validated at start; `POST /v1/recommend` answers one person or a
//! batch with exactly what `carma recommend --format json` gives for them (the same
//! [`crate::recourse`] code), `GET /v1/model` with what `carma inspect --json` shows. SIGHUP (and
//! `POST /v1/admin/reload` with `--admin-reload`) loads the file again and swaps it in whole if
//! it validates; SIGTERM and SIGINT stop accepting and finish the requests in flight.

mod error;
mod listen;
mod metrics;
mod model;
mod request;
mod routes;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use self::metrics::Metrics;
use self::model::Current;

/// Default of `--max-body`: 1 MiB, a batch of about 5,000 Loan people.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Default of `--max-batch`.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default of `--timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Default of `--max-concurrent`.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of `--header-timeout-ms`.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 30_000;
/// Default of `--shutdown-timeout`, seconds.
pub const DEFAULT_SHUTDOWN_SECONDS: u64 = 30;

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` fields after a timestamp and a level.
    Text,
    /// One JSON object per line.
    Json,
}

/// The log level of the server's own events (start, reloads, shutdown).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings (a refused reload).
    Warn,
    /// Also start, reloads and shutdown.
    Info,
    /// Everything.
    Debug,
}

/// Arguments of `carma serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model file (from `carma fit`); SIGHUP reads it again.
    #[arg(long)]
    pub model: PathBuf,
    /// Address to listen on (port 0: any free port; the bound address is printed on standard
    /// output as `listening on ADDR`). Keep it on localhost behind a reverse proxy for TLS and
    /// authentication (docs/SERVING.md).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Threads answering requests (default: every core; at most 256).
    #[arg(long, value_parser = crate::cmd::parse_jobs)]
    pub workers: Option<NonZeroUsize>,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY, value_parser = crate::cmd::parse_positive)]
    pub max_body: usize,
    /// Most people in one request.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH, value_parser = crate::cmd::parse_positive)]
    pub max_batch: usize,
    /// Time a recommend request may take, body included, milliseconds; past it the answer is
    /// 503 (`timeout`) or 408 (`request_timeout`, the body was late).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS, value_parser = positive_u64)]
    pub timeout_ms: u64,
    /// Recommend requests answered at once; more get 503 (`overloaded`) with `Retry-After`.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT, value_parser = crate::cmd::parse_positive)]
    pub max_concurrent: usize,
    /// Open connections at once; more wait in the kernel's queue until one closes.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = crate::cmd::parse_positive)]
    pub max_connections: usize,
    /// Time a client has to send a request's headers, milliseconds, counted from the
    /// connection's opening or the previous answer: it also closes keep-alive connections idle
    /// that long (keep a proxy's upstream idle timeout below it).
    #[arg(long, default_value_t = DEFAULT_HEADER_TIMEOUT_MS, value_parser = positive_u64)]
    pub header_timeout_ms: u64,
    /// Enable `POST /v1/admin/reload` (reload the model over HTTP; SIGHUP always works).
    #[arg(long)]
    pub admin_reload: bool,
    /// Accept a reloaded model whose features (names or order) differ from the served one's.
    #[arg(long)]
    pub allow_feature_change: bool,
    /// On SIGTERM or SIGINT, wait at most this many seconds for requests in flight, then exit
    /// with status 1.
    #[arg(long, default_value_t = DEFAULT_SHUTDOWN_SECONDS, value_parser = positive_u64)]
    pub shutdown_timeout: u64,
    /// Level of the server's own log lines (standard error).
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log: LogLevel,
    /// Also log one line per request (id, endpoint, status, latency, batch size, model).
    #[arg(long)]
    pub log_requests: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn positive_u64(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1, found '{s}'"
        )),
    }
}

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body: usize,
    /// Most people per request.
    pub max_batch: usize,
    /// Per-request time limit.
    pub timeout: Duration,
    /// Concurrent recommend requests.
    pub max_concurrent: usize,
}

/// Everything a handler reads.
pub struct App {
    /// The served model.
    pub current: Current,
    /// The limits.
    pub limits: Limits,
    /// One permit per request being answered.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Counters.
    pub metrics: Metrics,
    /// `POST /v1/admin/reload` is enabled.
    pub admin_reload: bool,
    /// A shutdown signal came: `/readyz` says so.
    pub draining: AtomicBool,
    /// Threads answering requests.
    pub workers: usize,
}

impl App {
    /// Reload the model, count and log the outcome.
    pub async fn reload(&self, why: &str) -> anyhow::Result<Arc<model::Model>> {
        match self.current.reload().await {
            Ok(m) => {
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    target: "carma::serve",
                    trigger = why,
                    model = %m.fingerprint,
                    generation = m.generation,
                    "model reloaded"
                );
                Ok(m)
            }
            Err(e) => {
                self.metrics.reloads_refused.fetch_add(1, Ordering::Relaxed);
                let old = self.current.get();
                tracing::warn!(
                    target: "carma::serve",
                    trigger = why,
                    error = %crate::message(&e),
                    model = %old.fingerprint,
                    "reload refused; the served model stays"
                );
                Err(e)
            }
        }
    }
}

/// Run `carma serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    init_logging(&args);
    let current = Current::load(&args.model, !args.allow_feature_change)?;
    let workers = args
        .workers
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("carma-serve")
        .build()
        .context("cannot start the server's threads")?;
    let limits = Limits {
        max_body: args.max_body,
        max_batch: args.max_batch,
        timeout: Duration::from_millis(args.timeout_ms),
        max_concurrent: args.max_concurrent,
    };
    let app = Arc::new(App {
        current,
        limits,
        slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent)),
        metrics: Metrics::default(),
        admin_reload: args.admin_reload,
        draining: AtomicBool::new(false),
        workers,
    });
    runtime.block_on(serve(args, app, workers))
}

async fn serve(args: Args, app: Arc<App>, workers: usize) -> anyhow::Result<()> {
    // Signals are taken over before the address is printed, so a client that reads it and
    // signals at once never meets the default action (exit without draining).
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let model = app.current.get();
    outln!("listening on {local}")?;
    crate::out::flush_stdout()?;
    tracing::info!(
        target: "carma::serve",
        addr = %local,
        model = %model.fingerprint,
        file = %model.path().display(),
        dataset = %model.dataset(),
        workers,
        max_body = app.limits.max_body,
        max_batch = app.limits.max_batch,
        timeout_ms = args.timeout_ms,
        max_concurrent = app.limits.max_concurrent,
        max_connections = args.max_connections,
        admin_reload = app.admin_reload,
        "serving"
    );
    if !local.ip().is_loopback() {
        tracing::warn!(
            target: "carma::serve",
            addr = %local,
            "listening beyond localhost: carma serve has no TLS and no authentication; put a \
             reverse proxy in front (docs/SERVING.md)"
        );
    }
    drop(model);

    let reloader = Arc::clone(&app);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = reloader.reload("SIGHUP").await;
        }
    });

    let drain = Duration::from_secs(args.shutdown_timeout);
    let stopping = Arc::clone(&app);
    let shutdown = async move {
        let which = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        stopping.draining.store(true, Ordering::SeqCst);
        tracing::info!(
            target: "carma::serve",
            signal = which,
            "shutting down: no new connections, finishing the requests in flight"
        );
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            tracing::error!(
                target: "carma::serve",
                seconds = drain.as_secs(),
                "requests still in flight after --shutdown-timeout; exiting"
            );
            std::process::exit(1);
        });
    };
    listen::serve(
        listener,
        routes::router(Arc::clone(&app)),
        args.max_connections,
        Duration::from_millis(args.header_timeout_ms),
        shutdown,
    )
    .await;
    tracing::info!(target: "carma::serve", "stopped");
    Ok(())
}

fn init_logging(args: &Args) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match args.log {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let requests = if args.log_requests {
        LevelFilter::INFO
    } else {
        LevelFilter::OFF
    };
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target("carma::serve", level)
        .with_target("carma::request", requests);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match args.log_format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
}
