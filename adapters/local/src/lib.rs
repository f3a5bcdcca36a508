//! # nube-local
//!
//! Runs a whole [`nube::App`] on one machine, with nothing else installed:
//!
//! - HTTP functions on `http://127.0.0.1:$PORT` (default 3000);
//! - documents in an embedded SQLite file, `$NUBE_DATA_DIR/nube.db` (default
//!   `./.nube/`), blobs in `$NUBE_DATA_DIR/blobs/<bucket>/`;
//! - a write through a store fires the matching document-created and blob-created
//!   functions, timers fire on their schedules;
//! - delivery is at least once and never lost: events are recorded in the same
//!   transaction as the write (an outbox), retried with backoff, delivered after a
//!   crash, and dead-lettered after `max_attempts` (see [`admin`] for the endpoints).
//!
//! ```no_run
//! # fn app() -> nube::App { unimplemented!() }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     nube_local::run(app()).await
//! }
//! ```

pub mod admin;
pub mod blobs;
pub mod db;
pub mod delivery;
pub mod documents;
pub mod logging;
pub mod outbox;
pub mod timers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use nube::{App, Provider, Resources, Trigger};

pub use delivery::RetryPolicy;
pub use documents::EmbeddedStore;

/// How the local runtime runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Where the database and blobs live.
    pub data_dir: PathBuf,
    /// Retries of failed deliveries.
    pub retry: RetryPolicy,
    /// Event deliveries running at once.
    pub concurrency: usize,
}

impl Config {
    /// The configuration for `app` from the environment: `PORT`, `NUBE_DATA_DIR`,
    /// `NUBE_RETRY_BASE_MS` (first retry delay, default 500).
    pub fn from_env(app: &App) -> Result<Self, String> {
        let port = match std::env::var("PORT") {
            Ok(p) => p.parse().map_err(|_| {
                format!("PORT={p:?} is not a port number; set PORT to a number such as 3000")
            })?,
            Err(_) => 3000,
        };
        let base_ms = match std::env::var("NUBE_RETRY_BASE_MS") {
            Ok(v) => v
                .parse()
                .map_err(|_| format!("NUBE_RETRY_BASE_MS={v:?} is not a number of milliseconds"))?,
            Err(_) => 500,
        };
        Ok(Self {
            port,
            data_dir: std::env::var_os("NUBE_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".nube")),
            retry: RetryPolicy {
                base: Duration::from_millis(base_ms),
                max: Duration::from_secs(60),
                max_attempts: app.settings().max_attempts,
            },
            concurrency: 16,
        })
    }
}

/// A running app: its address and stores. [`Running::stop`]ped, it stops, and the
/// event deliveries it cuts short do not count against `max_attempts`; dropped, it
/// stops as a crash would (those attempts count).
pub struct Running {
    _lock: std::fs::File,
    addr: SocketAddr,
    resources: Resources,
    shutdown: Option<oneshot::Sender<()>>,
    /// The timer loops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    outbox: outbox::Outbox,
    stop_deliveries: tokio::sync::watch::Sender<bool>,
    /// The delivery loop; it ends with the outbox rows whose deliveries it cut short.
    deliveries: Option<tokio::task::JoinHandle<Vec<i64>>>,
}

impl Running {
    /// Where HTTP is served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The app's stores (writes through them fire functions).
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Stops serving: in-flight requests finish, background loops end.
    pub async fn stop(mut self) {
        self.halt();
        let _ = (&mut self.server).await;
        self.give_back_attempts().await;
    }

    /// Waits until the server ends (after a shutdown signal).
    pub async fn wait(mut self) -> std::io::Result<()> {
        let r = (&mut self.server)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.halt();
        self.give_back_attempts().await;
        r
    }

    /// Deliveries cut short by a stop were not the events' fault: they do not count
    /// against `max_attempts` (a crash's do, see [`outbox::Outbox::claim`]).
    async fn give_back_attempts(&mut self) {
        let Some(deliveries) = self.deliveries.take() else {
            return;
        };
        let cut_short = match deliveries.await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "the delivery loop failed");
                return;
            }
        };
        match self.outbox.give_back_claims(cut_short).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                events = n,
                "deliveries cut short by the stop will run again at the next start"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not give back the attempts of deliveries cut short")
            }
        }
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.stop_deliveries.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
        if let Some(deliveries) = &self.deliveries {
            deliveries.abort();
        }
        self.server.abort();
    }
}

/// Why the runtime could not start; the message says what to do.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// One runtime per data directory: two would deliver the same events.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StartError(format!("cannot create {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError(format!(
            "another nube-local process is using {}; stop it, or set NUBE_DATA_DIR to another directory",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StartError(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

/// Starts `app` with `config` and returns once it accepts connections.
pub async fn start(app: App, config: Config) -> Result<Running, StartError> {
    app.validate().map_err(|e| StartError(e.to_string()))?;
    let app = Arc::new(app);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError(format!(
            "cannot create the data directory {}: {e}; set NUBE_DATA_DIR to a writable directory",
            config.data_dir.display()
        ))
    })?;
    let lock = lock_data_dir(&config.data_dir)?;
    let db_path = config.data_dir.join("nube.db");
    let db = db::Database::open(&db_path).map_err(|e| {
        StartError(format!(
            "cannot open the database {}: {e}",
            db_path.display()
        ))
    })?;
    let wake = Arc::new(Notify::new());
    let outbox = outbox::Outbox::new(db.clone(), wake.clone());
    let store = EmbeddedStore::with_triggers(db.clone(), app.clone(), outbox.clone());
    let hook = Arc::new(blobs::LocalBlobEvents::new(
        db.clone(),
        app.clone(),
        outbox.clone(),
    ));
    let blob_root = config.data_dir.join("blobs");
    let mut resources = Resources::new(Arc::new(store)).with_declarations(&app, false);
    let mut buckets = Vec::new();
    for name in app.buckets() {
        let bucket = blobs::open_bucket(&blob_root, name).map_err(|e| {
            StartError(format!(
                "cannot open bucket {name} in {}: {e}",
                blob_root.display()
            ))
        })?;
        buckets.push(bucket.clone());
        resources = resources.with_bucket(bucket.with_events(hook.clone()));
    }
    let released = outbox
        .release_claims()
        .await
        .map_err(|e| StartError(format!("cannot read the outbox: {e}")))?;
    if released > 0 {
        tracing::warn!(
            released,
            "events in flight when the last run stopped will be delivered again"
        );
    }
    let recovered = hook
        .recover(&buckets)
        .await
        .map_err(|e| StartError(format!("cannot recover unfinished blob writes: {e}")))?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "blob writes interrupted by a crash were recovered"
        );
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(|e| {
            StartError(format!(
                "cannot listen on 127.0.0.1:{}: {e}; stop what uses the port or set PORT to another one",
                config.port
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;

    let (stop_deliveries, stop) = tokio::sync::watch::channel(false);
    let deliveries = tokio::spawn(delivery::run(
        app.clone(),
        resources.clone(),
        outbox.clone(),
        wake,
        config.retry,
        config.concurrency,
        stop,
    ));
    let mut tasks = Vec::new();
    for f in app.functions() {
        if let Trigger::Timer(schedule) = f.trigger() {
            tasks.push(tokio::spawn(timers::run(
                db.clone(),
                outbox.clone(),
                f.name().to_owned(),
                schedule.clone(),
            )));
        }
    }

    let router = app
        .http_service(Provider::Local, resources.clone())
        .merge(admin::router(
            app.clone(),
            resources.clone(),
            outbox.clone(),
        ));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(Running {
        _lock: lock,
        addr,
        resources,
        shutdown: Some(tx),
        tasks,
        server,
        outbox,
        stop_deliveries,
        deliveries: Some(deliveries),
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Serves `app` until Ctrl-C or SIGTERM: the `main` of a local app binary. With
/// `--nube-manifest` (or `NUBE_MANIFEST=1`) it prints the app's manifest instead.
pub async fn run(app: App) -> ExitCode {
    if nube::manifest::print_if_requested(&app) {
        return ExitCode::SUCCESS;
    }
    logging::init();
    let config = match Config::from_env(&app) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let name = app.name().to_owned();
    let functions: Vec<String> = app
        .functions()
        .iter()
        .map(|f| format!("{} ({})", f.name(), f.trigger().kind()))
        .collect();
    let data_dir = config.data_dir.clone();
    let mut running = match start(app, config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        app = name,
        url = running.url(),
        data_dir = %data_dir.display(),
        functions = functions.join(", "),
        "nube-local is serving"
    );
    let shutdown = running.shutdown.take();
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down: finishing in-flight requests (press Ctrl-C again to stop now)");
            if let Some(tx) = shutdown { let _ = tx.send(()); }
        }
        r = &mut running.server => {
            return match r {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => {
                    eprintln!("error: the server stopped: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: the server task failed: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    tokio::select! {
        r = running.wait() => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        _ = shutdown_signal() => {
            eprintln!("stopped without finishing in-flight requests (a second shutdown signal)");
            // At once: returning would wait for blocking work still running.
            std::process::exit(1)
        }
    }
}
