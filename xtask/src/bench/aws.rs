//! `cargo xtask bench aws`: nube's Lambda bootstrap (`nube_aws::run`) against a bare
//! `lambda_runtime` function doing the same work (or, with `--baseline
//! lambda-http-axum`, an axum Router run by `lambda_http`), in one run, and prints a
//! Markdown table (also written to `target/nube/bench/aws.md`).
//!
//! Both are HTTP-only binaries of `examples/baselines` (`nube-lambda-hello`, and
//! `bare-lambda-http` or `bare-lambda-axum`) built with the bootstrap's profile
//! (`release-small`) by the host toolchain. A Runtime API emulated here (plain std, one thread per connection) serves
//! them:
//!
//! - per invocation: the same API Gateway HTTP API (payload 2.0) `GET /hello` event,
//!   `--invocations` times to each, one invocation at a time, timed from the moment
//!   `/next` is answered to the moment `/response` has arrived; both processes stay up
//!   and take turns in rounds, so that drift on the machine hits both alike; every
//!   response must be `200` with body `hello`;
//! - init: exec to the first `/next` poll, median of `--starts` starts (taking turns);
//! - size: `bootstrap.zip` as `cargo xtask package` writes it, of both, and of the
//!   delivery-app built as `cargo xtask package` builds it (`aws` without the default
//!   `local`: DynamoDB, S3, images).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{Args, Unready, median};
use crate::package::aws as package;
use crate::{root, run_cmd};

/// The Runtime API's path prefix.
const API: &str = "/2018-06-01/runtime";

const FUNCTION_NAME: &str = "nube-bench";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:nube-bench";
const TRACE_ID: &str = "Root=1-5e6722a7-cc56b1a246db7ae02d4da47e;Parent=53995c3f42cd8ad8;Sampled=0";

/// What API Gateway (HTTP API, payload 2.0, `$default` stage) sends for
/// `curl https://.../hello`.
const EVENT: &str = r#"{
  "version": "2.0",
  "routeKey": "GET /hello",
  "rawPath": "/hello",
  "rawQueryString": "",
  "headers": {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate, br",
    "content-length": "0",
    "host": "k7benchapi.execute-api.us-east-1.amazonaws.com",
    "user-agent": "curl/8.5.0",
    "x-amzn-trace-id": "Root=1-5e6722a7-cc56b1a246db7ae02d4da47e",
    "x-forwarded-for": "198.51.100.23",
    "x-forwarded-port": "443",
    "x-forwarded-proto": "https"
  },
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "k7benchapi",
    "domainName": "k7benchapi.execute-api.us-east-1.amazonaws.com",
    "domainPrefix": "k7benchapi",
    "http": {
      "method": "GET",
      "path": "/hello",
      "protocol": "HTTP/1.1",
      "sourceIp": "198.51.100.23",
      "userAgent": "curl/8.5.0"
    },
    "requestId": "BnchReqIdAAA=",
    "routeKey": "GET /hello",
    "stage": "$default",
    "time": "23/Nov/2026:10:00:00 +0000",
    "timeEpoch": 1795428000000
  },
  "isBase64Encoded": false
}"#;

/// The bootstrap's profile, from the packager.
const PROFILE: &str = package::PROFILE;

/// One of the two Lambda functions measured.
struct Subject {
    name: &'static str,
    bin: &'static str,
    binary: PathBuf,
}

/// Options of the AWS bench (from `cargo xtask bench`'s).
struct Plan {
    invocations: u64,
    warmup: u64,
    rounds: u64,
    starts: u32,
}

pub fn run(args: &Args) -> Result<(), String> {
    let plan = Plan {
        invocations: args.invocations,
        warmup: args.warmup,
        rounds: args.rounds.clamp(1, args.invocations.max(1)),
        starts: args.starts.unwrap_or(20).max(1),
    };
    if plan.invocations == 0 {
        return Err("--invocations must be at least 1".into());
    }
    let out_dir = root().join("target/nube/bench/aws");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;

    // Built one package per cargo run: building them together would unify the
    // features of nube-aws, and the HTTP-only app would carry the delivery-app's SDKs.
    let (baseline, baseline_name) = match args.baseline.as_str() {
        "lambda-http-axum" => ("bare-lambda-axum", "axum Router on `lambda_http`"),
        _ => ("bare-lambda-http", "bare `lambda_runtime`"),
    };
    eprintln!(
        "    Building the bootstraps (profile {PROFILE}, host toolchain): nube-lambda-hello, {baseline}, delivery-app (aws)"
    );
    let bins = ["nube-lambda-hello", baseline];
    run_cmd(&mut package::host_build("nube-baselines", &bins, &[]))?;
    run_cmd(&mut package::host_build(
        "delivery-app",
        &["delivery-app"],
        &[package::FEATURE],
    ))?;
    let built = root().join("target").join(PROFILE);
    let subjects = [
        Subject {
            name: "nube (`nube_aws::run`)",
            bin: "nube-lambda-hello",
            binary: built.join("nube-lambda-hello"),
        },
        Subject {
            name: baseline_name,
            bin: baseline,
            binary: built.join(baseline),
        },
    ];

    eprintln!("    Zipping the bootstraps as `cargo xtask package` does...");
    let mut sizes = Vec::new();
    for bin in ["nube-lambda-hello", baseline, "delivery-app"] {
        sizes.push(zip_size(&built.join(bin), &out_dir.join(bin))?);
    }
    let packaged = crate::package::artifact(
        &root().join("target"),
        "aws",
        "delivery-app",
        "delivery-app",
    );
    let packaged = std::fs::metadata(&packaged).ok().map(|m| m.len());

    let busy_before = busy_cpus(Duration::from_secs(1));
    eprintln!(
        "    Timing init (exec to the first /next poll), {} starts each...",
        plan.starts
    );
    let mut inits: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..plan.starts {
        for k in turn_order(i as u64) {
            let took = time_init(&subjects[k], &out_dir)?;
            inits[k].push(took.as_secs_f64() * 1000.0);
        }
    }

    eprintln!(
        "    Timing {} invocations each ({} rounds, after {} warm-up invocations)...",
        plan.invocations, plan.rounds, plan.warmup
    );
    let timed = time_invocations(&subjects, &plan, &out_dir)?;
    let busy_after = busy_cpus(Duration::from_secs(1));

    let stats: Vec<Stats> = timed.iter().map(|t| Stats::of(&t.latencies)).collect();
    let cpu_us = [timed[0].cpu_us, timed[1].cpu_us];
    let init_median: Vec<f64> = inits.iter_mut().map(|v| median(v)).collect();
    let mut md = report(
        &plan,
        &subjects,
        &stats,
        cpu_us,
        &init_median,
        &sizes,
        packaged,
    );
    if let (Some(before), Some(after)) = (busy_before, busy_after) {
        md.push_str(&format!(
            "\nOther work on the machine (CPU busy while the bench slept, just before and just after the timing): {:.0}% and {:.0}%.\n",
            before * 100.0,
            after * 100.0
        ));
        if before.max(after) > BUSY_WARNING {
            let warning = "**The machine was busy with other work: these timings are not reliable; run again on a quiet machine.**\n";
            md.push_str(warning);
            eprintln!("warning: {}", warning.trim().trim_matches('*'));
        }
    }
    let report_path = root().join("target/nube/bench/aws.md");
    std::fs::write(&report_path, &md)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    println!("{md}");
    Ok(())
}

/// Above this share of the CPUs busy with other work, the report says its timings are
/// not reliable.
const BUSY_WARNING: f64 = 0.10;

/// The share of the machine's CPU time spent outside idle during `window` (while
/// this process sleeps, so: other work), from `/proc/stat`; `None` where there is none.
fn busy_cpus(window: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
        Some((total, idle))
    }
    let (total0, idle0) = sample()?;
    std::thread::sleep(window);
    let (total1, idle1) = sample()?;
    let total = total1.checked_sub(total0)?;
    if total == 0 {
        return None;
    }
    Some(1.0 - idle1.saturating_sub(idle0) as f64 / total as f64)
}

/// Which subject goes first in round `i`: they alternate.
fn turn_order(i: u64) -> [usize; 2] {
    if i.is_multiple_of(2) { [0, 1] } else { [1, 0] }
}

/// The binary's size and that of its `bootstrap.zip` (written to `dir`).
fn zip_size(binary: &Path, dir: &Path) -> Result<(u64, u64), String> {
    let bytes =
        std::fs::read(binary).map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let zip = dir.join("bootstrap.zip");
    package::write_bootstrap_zip(&zip, &bytes)?;
    let zipped = std::fs::metadata(&zip)
        .map_err(|e| format!("cannot read {}: {e}", zip.display()))?
        .len();
    Ok((bytes.len() as u64, zipped))
}

/// Starts `subject` against a fresh Runtime API and returns the time from exec to its
/// first `/next` poll.
fn time_init(subject: &Subject, out_dir: &Path) -> Result<Duration, String> {
    let driver = Driver::start()?;
    let started = Instant::now();
    let mut child = spawn(subject, driver.port, out_dir)?;
    let within = Duration::from_secs(30);
    let result = driver.time_to_first_poll(&mut child, started, within);
    let _ = child.kill();
    let _ = child.wait();
    result.map_err(|why| driver.failure(subject, within, why))
}

/// Runs both subjects side by side, each against its own Runtime API, and returns
/// every timed invocation of each.
/// What the timed invocations of one subject measured.
struct Timed {
    latencies: Vec<Duration>,
    /// The bootstrap's CPU time (user + system, all threads) per timed invocation,
    /// in µs, from `/proc/<pid>/stat` around each round; `None` where there is none.
    cpu_us: Option<f64>,
}

fn time_invocations(
    subjects: &[Subject; 2],
    plan: &Plan,
    out_dir: &Path,
) -> Result<[Timed; 2], String> {
    let drivers = [Driver::start()?, Driver::start()?];
    let mut children = Vec::new();
    for (subject, driver) in subjects.iter().zip(&drivers) {
        children.push(Running(spawn(subject, driver.port, out_dir)?));
    }
    let timeout = Duration::from_secs(120);
    // Warm-up, untimed: the first invocations pay for connections and lazy set-up.
    for k in 0..2 {
        drivers[k].grant(plan.warmup.max(1), false);
        drivers[k].wait(&mut children[k].0, &subjects[k], timeout, |s| {
            s.completed == s.granted
        })?;
    }
    let per_round = plan.invocations.div_ceil(plan.rounds);
    let mut left = [plan.invocations; 2];
    let mut ticks = [Some(0); 2];
    let mut round = 0;
    while left.iter().any(|&l| l > 0) {
        for k in turn_order(round) {
            let n = per_round.min(left[k]);
            if n == 0 {
                continue;
            }
            left[k] -= n;
            let pid = children[k].0.id();
            let before = super::cpu_ticks(pid);
            drivers[k].grant(n, true);
            drivers[k].wait(&mut children[k].0, &subjects[k], timeout, |s| {
                s.completed == s.granted
            })?;
            ticks[k] = match (ticks[k], before, super::cpu_ticks(pid)) {
                (Some(sum), Some(before), Some(after)) => Some(sum + after - before),
                _ => None,
            };
        }
        round += 1;
    }
    let mut out = [Vec::new(), Vec::new()];
    for (k, driver) in drivers.iter().enumerate() {
        let state = driver.lock();
        if state.failure_count > 0 {
            return Err(format!(
                "{}: {} of {} invocations did not answer 200 `hello`; first: {}",
                subjects[k].name,
                state.failure_count,
                state.completed,
                state.failures.join("; ")
            ));
        }
        out[k] = state.samples.clone();
    }
    let [nube, bare] = out;
    // Ticks of 10 ms (Linux's USER_HZ).
    let cpu_us = |k: usize| ticks[k].map(|t| t as f64 * 10_000.0 / plan.invocations as f64);
    Ok([
        Timed {
            latencies: nube,
            cpu_us: cpu_us(0),
        },
        Timed {
            latencies: bare,
            cpu_us: cpu_us(1),
        },
    ])
}

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `subject` as Lambda would: a clean environment with the Runtime API's
/// address and the function's settings. Its stdout is a pipe, as on Lambda, drained
/// by a thread into `<bin>.log` (stderr goes there directly).
fn spawn(subject: &Subject, port: u16, out_dir: &Path) -> Result<Child, String> {
    let log_path = out_dir.join(format!("{}.log", subject.bin));
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let mut child = Command::new(&subject.binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("_HANDLER", "hello")
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/nube-bench")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/23/[$LATEST]0123456789abcdef",
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("LAMBDA_TASK_ROOT", "/var/task")
        .env("LAMBDA_RUNTIME_DIR", "/var/runtime")
        .env("TZ", ":UTC")
        .env("LANG", "en_US.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", subject.binary.display()))?;
    if let Some(mut stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut log = std::io::BufWriter::with_capacity(1 << 16, log);
            let _ = std::io::copy(&mut stdout, &mut log);
        });
    }
    Ok(child)
}

/// The last lines of a subject's log, for error messages.
fn log_tail(subject: &Subject) -> String {
    let path = root()
        .join("target/nube/bench/aws")
        .join(format!("{}.log", subject.bin));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n      ");
    format!("its output ({}):\n      {tail}", path.display())
}

/// What the emulated Runtime API knows about its one function.
#[derive(Default)]
struct State {
    /// Invocations the bench allows to hand out so far.
    granted: u64,
    /// Invocations handed out by `/next`.
    handed: u64,
    /// Invocations answered (`/response` or `/error`).
    completed: u64,
    /// Whether to keep the times of the invocations being granted.
    record: bool,
    /// The invocation handed out and not answered yet, and when `/next` answered.
    pending: Option<(String, Instant)>,
    samples: Vec<Duration>,
    /// When the first `/next` poll arrived.
    first_poll: Option<Instant>,
    failure_count: u64,
    /// The first few failures, described.
    failures: Vec<String>,
    /// What the runtime reported to `/init/error`.
    init_error: Option<String>,
    stopped: bool,
}

impl State {
    fn fail(&mut self, what: String) {
        self.failure_count += 1;
        if self.failures.len() < 3 {
            self.failures.push(what);
        }
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// Why a runtime was not where it was waited for.
#[derive(Debug)]
pub(crate) enum NoPoll {
    /// It reported this to `/init/error`.
    InitError(String),
    /// It exited, or time ran out.
    Unready(Unready),
}

/// A Runtime API on a local port: `/next` hands out the bench event as far as
/// [`Driver::grant`] allows and blocks after that.
pub(crate) struct Driver {
    /// The Runtime API's port (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`).
    pub(crate) port: u16,
    shared: Arc<Shared>,
}

impl Driver {
    /// Starts a Runtime API with nothing granted: `/next` records its first poll
    /// and blocks.
    pub(crate) fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.state.lock().unwrap().stopped {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || serve_connection(stream, &shared));
            }
        });
        Ok(Self { port, shared })
    }

    /// Its state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Lets `/next` hand out `n` more invocations, timed when `record`.
    fn grant(&self, n: u64, record: bool) {
        let mut state = self.lock();
        state.granted += n;
        state.record = record;
        self.shared.changed.notify_all();
    }

    /// Waits for the first `/next` poll of the runtime `child`, started at `started`,
    /// and returns the time from `started` to that poll; fails when the runtime reports
    /// an init error, exits, or `within` passes.
    pub(crate) fn time_to_first_poll(
        &self,
        child: &mut Child,
        started: Instant,
        within: Duration,
    ) -> Result<Duration, NoPoll> {
        self.wait_until(child, within, |s| s.first_poll.is_some())?;
        let first = self.lock().first_poll.expect("waited for it");
        Ok(first.duration_since(started))
    }

    /// Waits until `done` holds, failing when the process exits, reports an init
    /// error, or `timeout` passes.
    fn wait(
        &self,
        child: &mut Child,
        subject: &Subject,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), String> {
        self.wait_until(child, timeout, done)
            .map_err(|why| self.failure(subject, timeout, why))
    }

    /// Waits until `done` holds; why not when the runtime reports an init error, `child`
    /// exits, or `timeout` passes.
    fn wait_until(
        &self,
        child: &mut Child,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), NoPoll> {
        let started = Instant::now();
        loop {
            {
                let state = self.lock();
                if done(&state) {
                    return Ok(());
                }
                if let Some(e) = &state.init_error {
                    return Err(NoPoll::InitError(e.clone()));
                }
                let (state, _) = self
                    .shared
                    .changed
                    .wait_timeout(state, Duration::from_millis(50))
                    .unwrap();
                if done(&state) {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(NoPoll::Unready(Unready::Exited(status)));
            }
            if started.elapsed() > timeout {
                return Err(NoPoll::Unready(Unready::TimedOut));
            }
        }
    }

    /// What went wrong while `subject` was waited for `timeout`, with its log's tail.
    fn failure(&self, subject: &Subject, timeout: Duration, why: NoPoll) -> String {
        match why {
            NoPoll::InitError(e) => format!(
                "{} reported an init error: {e}\n  {}",
                subject.name,
                log_tail(subject)
            ),
            NoPoll::Unready(Unready::Exited(status)) => format!(
                "{} ({}) exited ({status})\n  {}",
                subject.name,
                subject.binary.display(),
                log_tail(subject)
            ),
            NoPoll::Unready(Unready::TimedOut) => {
                let state = self.lock();
                format!(
                    "{} did not keep up: {} of {} invocations answered after {timeout:?}\n  {}",
                    subject.name,
                    state.completed,
                    state.granted,
                    log_tail(subject)
                )
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.lock().stopped = true;
        self.shared.changed.notify_all();
        // Wakes the accept loop so that it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One HTTP/1.1 request, as the Runtime API client sends them.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, path, body }))
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}";

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Ok(Some(request)) = read_request(&mut reader) {
        let arrived = Instant::now();
        let answer = match route(&request) {
            Route::Next => match next(shared, arrived) {
                Some(answer) => answer,
                None => return,
            },
            Route::Response(id) => {
                finish(shared, id, arrived, Ok(&request.body));
                ACCEPTED.to_vec()
            }
            Route::Error(id) => {
                finish(shared, id, arrived, Err(&request.body));
                ACCEPTED.to_vec()
            }
            Route::InitError => {
                let mut state = shared.state.lock().unwrap();
                state.init_error = Some(String::from_utf8_lossy(&request.body).into_owned());
                shared.changed.notify_all();
                ACCEPTED.to_vec()
            }
            Route::Unknown => response(
                "404 Not Found",
                &[("Content-Type", "application/json")],
                br#"{"errorType":"NotFound","errorMessage":"no such Runtime API path"}"#,
            ),
        };
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    Unknown,
}

fn route(request: &Request) -> Route<'_> {
    let Some(rest) = request.path.strip_prefix(API) else {
        return Route::Unknown;
    };
    match (request.method.as_str(), rest) {
        ("GET", "/invocation/next") => Route::Next,
        ("POST", "/init/error") => Route::InitError,
        ("POST", rest) => match rest
            .strip_prefix("/invocation/")
            .and_then(|r| r.rsplit_once('/'))
        {
            Some((id, "response")) => Route::Response(id),
            Some((id, "error")) => Route::Error(id),
            _ => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

/// `GET /next`: blocks until an invocation is granted, then answers with the event.
/// `None` when the driver stops first.
fn next(shared: &Shared, arrived: Instant) -> Option<Vec<u8>> {
    let mut state = shared.state.lock().unwrap();
    if state.first_poll.is_none() {
        state.first_poll = Some(arrived);
        shared.changed.notify_all();
    }
    while state.handed >= state.granted && !state.stopped {
        state = shared.changed.wait(state).unwrap();
    }
    if state.stopped {
        return None;
    }
    state.handed += 1;
    let id = format!("0b5e4a1d-7c2f-4e3a-9d1b-{:012x}", state.handed);
    let deadline_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let answer = response(
        "200 OK",
        &[
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", &id),
            ("Lambda-Runtime-Deadline-Ms", &deadline_ms.to_string()),
            ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
            ("Lambda-Runtime-Trace-Id", TRACE_ID),
        ],
        EVENT.as_bytes(),
    );
    // The clock starts as the answer goes out (before the write, so that a response
    // can never be seen before its start).
    state.pending = Some((id, Instant::now()));
    Some(answer)
}

/// `POST .../response` (`Ok`) or `.../error` (`Err`) for invocation `id`, arrived at
/// `arrived`.
fn finish(shared: &Shared, id: &str, arrived: Instant, body: Result<&[u8], &[u8]>) {
    let mut state = shared.state.lock().unwrap();
    let started = match state.pending.take() {
        Some((pending, started)) if pending == id => started,
        other => {
            state.pending = other;
            state.fail(format!("an answer for unknown invocation {id:?}"));
            shared.changed.notify_all();
            return;
        }
    };
    if state.record {
        state.samples.push(arrived.duration_since(started));
    }
    state.completed += 1;
    match body {
        Ok(body) => {
            if let Err(e) = check_response(body) {
                state.fail(e);
            }
        }
        Err(body) => state.fail(format!(
            "invocation {id} failed: {}",
            String::from_utf8_lossy(body)
        )),
    }
    shared.changed.notify_all();
}

/// The expected answer: an HTTP API response with status 200 and body `hello`.
fn check_response(body: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the response is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    let ok =
        value["statusCode"] == 200 && value["body"] == "hello" && value["isBase64Encoded"] != true;
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected response {value}"))
    }
}

/// Median and p99 of a set of invocation times, in microseconds.
struct Stats {
    median_us: f64,
    p99_us: f64,
    mean_us: f64,
    count: usize,
}

impl Stats {
    fn of(samples: &[Duration]) -> Self {
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let at = |q: f64| us[((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1];
        Self {
            median_us: at(0.5),
            p99_us: at(0.99),
            mean_us: us.iter().sum::<f64>() / us.len() as f64,
            count: us.len(),
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

fn report(
    plan: &Plan,
    subjects: &[Subject; 2],
    stats: &[Stats],
    cpu_us: [Option<f64>; 2],
    init_ms: &[f64],
    sizes: &[(u64, u64)],
    packaged: Option<u64>,
) -> String {
    let (nube, bare) = (&stats[0], &stats[1]);
    let mut md = String::new();
    md.push_str(&format!(
        "`cargo xtask bench aws --invocations {} --starts {}{}` ({} sequential API Gateway v2 `GET /hello` invocations each, in {} alternating rounds after {} warm-up ones; \
         the Runtime API is emulated on the same 2 cores; binaries built with profile `{PROFILE}` by the host toolchain)\n\n",
        plan.invocations,
        plan.starts,
        if subjects[1].bin == "bare-lambda-axum" {
            " --baseline lambda-http-axum"
        } else {
            ""
        },
        plan.invocations,
        plan.rounds,
        plan.warmup
    ));
    md.push_str(&format!(
        "| | {} | {} | nube / bare |\n|---|---|---|---|\n",
        subjects[0].name, subjects[1].name
    ));
    md.push_str(&format!(
        "| per invocation, median µs | {:.1} | {:.1} | {:.2} |\n",
        nube.median_us,
        bare.median_us,
        nube.median_us / bare.median_us
    ));
    md.push_str(&format!(
        "| per invocation, p99 µs | {:.1} | {:.1} | {:.2} |\n",
        nube.p99_us,
        bare.p99_us,
        nube.p99_us / bare.p99_us
    ));
    md.push_str(&format!(
        "| per invocation, mean µs | {:.1} | {:.1} | {:.2} |\n",
        nube.mean_us,
        bare.mean_us,
        nube.mean_us / bare.mean_us
    ));
    if let [Some(nube_cpu), Some(bare_cpu)] = cpu_us {
        md.push_str(&format!(
            "| bootstrap CPU per invocation (all threads), µs | {nube_cpu:.1} | {bare_cpu:.1} | {:.2} |\n",
            nube_cpu / bare_cpu
        ));
    }
    md.push_str(&format!(
        "| init: exec to first `/next`, median ms | {:.2} | {:.2} | {:.2} |\n",
        init_ms[0],
        init_ms[1],
        init_ms[0] / init_ms[1]
    ));
    md.push_str(&format!(
        "| `bootstrap.zip` MB | {} | {} | {:.2} |\n",
        mb(sizes[0].1),
        mb(sizes[1].1),
        sizes[0].1 as f64 / sizes[1].1 as f64
    ));
    md.push_str(&format!(
        "| `bootstrap` MB (unzipped) | {} | {} | {:.2} |\n",
        mb(sizes[0].0),
        mb(sizes[1].0),
        sizes[0].0 as f64 / sizes[1].0 as f64
    ));
    md.push_str(&format!(
        "\nEvery response ({} + {} timed, and the warm-up ones) was `200` with body `hello`.\n",
        nube.count, bare.count
    ));
    md.push_str(&format!(
        "\ndelivery-app as `cargo xtask package` builds it (`--no-default-features --features aws`: DynamoDB + S3 backends, images, no local runtime): `bootstrap.zip` {} MB (`bootstrap` {} MB), same profile, host toolchain",
        mb(sizes[2].1),
        mb(sizes[2].0)
    ));
    if let Some(packaged) = packaged {
        md.push_str(&format!(
            "; `target/nube/aws/delivery-app/bootstrap.zip` from the last `cargo xtask package --target aws` (zigbuild, glibc 2.34): {} MB",
            mb(packaged)
        ));
    }
    md.push_str(".\n");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_paths_route() {
        let req = |method: &str, path: &str| Request {
            method: method.into(),
            path: path.into(),
            body: Vec::new(),
        };
        let next = req("GET", "/2018-06-01/runtime/invocation/next");
        assert!(matches!(route(&next), Route::Next));
        let ok = req("POST", "/2018-06-01/runtime/invocation/abc-1/response");
        assert!(matches!(route(&ok), Route::Response("abc-1")));
        let err = req("POST", "/2018-06-01/runtime/invocation/abc-1/error");
        assert!(matches!(route(&err), Route::Error("abc-1")));
        let init = req("POST", "/2018-06-01/runtime/init/error");
        assert!(matches!(route(&init), Route::InitError));
        let other = req("GET", "/2018-06-01/runtime/invocation/abc-1/response");
        assert!(matches!(route(&other), Route::Unknown));
    }

    #[test]
    fn requests_parse_with_length_or_chunks() {
        let raw = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut reader = BufReader::new(&raw[..]);
        let first = read_request(&mut reader).unwrap().unwrap();
        assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/a"));
        assert_eq!(first.body, b"hello");
        let second = read_request(&mut reader).unwrap().unwrap();
        assert_eq!(second.body, b"abcde");
        assert!(read_request(&mut reader).unwrap().is_none());
    }

    #[test]
    fn only_200_hello_passes() {
        check_response(
            br#"{"statusCode":200,"headers":{},"body":"hello","isBase64Encoded":false}"#,
        )
        .unwrap();
        assert!(check_response(br#"{"statusCode":404,"body":"hello"}"#).is_err());
        assert!(
            check_response(br#"{"statusCode":200,"body":"aGVsbG8=","isBase64Encoded":true}"#)
                .is_err()
        );
        assert!(check_response(b"not json").is_err());
    }

    #[test]
    fn the_event_is_an_http_api_request() {
        let event: Value = serde_json::from_str(EVENT).unwrap();
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
        assert_eq!(event["rawPath"], "/hello");
    }

    #[test]
    fn percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Stats::of(&samples);
        assert_eq!(s.median_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
    }
}
