//! `cargo xtask bench`: measures nube against bare baselines doing the same work, in
//! the same run, and prints a Markdown table (also written to `target/nube/bench/`).
//!
//! `cargo xtask bench local` (this file) measures the local runtime against a bare axum
//! + rusqlite server (`local.md`):
//!
//! - `GET /todos` (20 todos stored) under `wrk` for `--seconds`: req/s, p50, p99;
//! - start-up: exec to the first `200` from `GET /todos`, median of `--starts` runs;
//! - idle memory (RSS) after start-up;
//! - write → function start, for a blob and for a document (in-process, release).
//!
//! `cargo xtask bench aws` ([`aws`]) measures the Lambda bootstrap against a bare
//! `lambda_runtime` function (or, with `--baseline lambda-http-axum`, an axum Router
//! on `lambda_http`) through an emulated Runtime API (`aws.md`);
//! `cargo xtask bench azure` ([`azure`]) the custom handler against one written by
//! hand with axum (`azure.md`); `cargo xtask bench gcp` ([`gcp`]) the Cloud Run server
//! against bare axum, axum with tower-http's request span, request id, timeout and
//! panic guard, and the Node Functions Framework (`gcp.md`).

pub(crate) mod aws;
mod azure;
mod gcp;
mod instructions;
mod knobs;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root, run_cmd};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// What to measure: `local` (the local runtime against bare axum + rusqlite),
    /// `aws` (the Lambda bootstrap against bare lambda_runtime, or an axum Router on
    /// lambda_http with `--baseline`: per-invocation time, init, bootstrap.zip size) or
    /// `gcp` (the Cloud Run server against bare axum, axum with tower-http's request
    /// span, request id, timeout and panic guard, and Google's Node Functions
    /// Framework: throughput, p99, cold start, memory) or
    /// `azure` (the custom handler against one written by hand with axum), or
    /// `instructions` (the adapters' in-process benches under valgrind's callgrind:
    /// instructions per request, nube and baseline, steady on a busy machine).
    #[arg(value_parser = ["local", "aws", "azure", "gcp", "instructions"])]
    pub target: String,
    /// local, azure, gcp: length of each load run, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// local, azure, gcp: open connections during the load run.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Start-ups timed per server or function (default: 10 for local, azure and gcp, 20 for aws).
    #[arg(long)]
    pub starts: Option<u32>,
    /// gcp: `RUST_LOG` for the Rust servers (default: unset, each logs as it does by
    /// default; nube keeps its invocation spans under any filter).
    #[arg(long, value_name = "FILTER")]
    pub rust_log: Option<String>,
    /// aws: timed invocations per function, served one at a time.
    #[arg(long, default_value_t = 10_000)]
    pub invocations: u64,
    /// aws: untimed invocations per function before the timed ones.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// aws: what nube's bootstrap is compared with: `lambda-runtime` (a bare
    /// `lambda_runtime` function reading `aws_lambda_events` types) or
    /// `lambda-http-axum` (an axum Router run by `lambda_http::run`).
    #[arg(long, value_parser = ["lambda-runtime", "lambda-http-axum"], default_value = "lambda-runtime")]
    pub baseline: String,
    /// aws: the timed invocations are split in this many rounds, the two functions
    /// taking turns; azure, gcp: load runs per server, taking turns (at most 5, so the
    /// default runs 5).
    #[arg(long, default_value_t = 10)]
    pub rounds: u64,
    /// instructions: the cargo profile the benches are built with: `bench` (opt-level
    /// 3), or `release-small` (opt-level "z", what `cargo xtask package` builds
    /// bootstraps and executables with; symbols kept for the count).
    #[arg(long, value_parser = ["bench", "release-small"], default_value = "bench")]
    pub profile: String,
}

struct Server {
    name: &'static str,
    binary: PathBuf,
}

pub(crate) use nube::testing::free_port;

/// Why a started process did not get ready.
#[derive(Debug)]
pub(crate) enum Unready {
    /// It exited first, with this status.
    Exited(ExitStatus),
    /// It was still not ready when the time allowed had passed.
    TimedOut,
}

/// Waits until `ready` holds, asking it every `pause`, and returns how long that took;
/// fails when `child` exits first or `within` passes. The caller kills the child when
/// it needs to, and words the failure.
pub(crate) fn wait_ready(
    child: &mut Child,
    within: Duration,
    pause: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<Duration, Unready> {
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(started.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Unready::Exited(status));
        }
        if started.elapsed() > within {
            return Err(Unready::TimedOut);
        }
        std::thread::sleep(pause);
    }
}

/// Starts a server (`command`, its output discarded) and waits, up to 30 s, until
/// `ready` holds, asking it every `pause`; returns the child and the time from exec.
/// The errors name `name`, and say that it did not `what` in time.
pub(crate) fn start_server(
    name: &str,
    command: &mut Command,
    what: &str,
    pause: Duration,
    ready: impl FnMut() -> bool,
) -> Result<(Child, Duration), String> {
    let t0 = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {name} ({}): {e}",
                command.get_program().to_string_lossy()
            )
        })?;
    match wait_ready(&mut child, Duration::from_secs(30), pause, ready) {
        Ok(_) => Ok((child, t0.elapsed())),
        Err(Unready::Exited(status)) => Err(format!("{name} exited at start-up ({status})")),
        Err(Unready::TimedOut) => {
            let _ = child.kill();
            Err(format!("{name} did not {what} within 30 s"))
        }
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; its status and the whole answer, or
/// `None` when nothing answers.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out))
}

fn start(server: &Server, dir: &Path, port: u16) -> Result<(Child, Duration), String> {
    let _ = std::fs::remove_dir_all(dir);
    start_server(
        server.name,
        Command::new(&server.binary)
            .env("PORT", port.to_string())
            .env("NUBE_DATA_DIR", dir)
            .env("RUST_LOG", "warn"),
        "answer GET /todos",
        Duration::from_micros(500),
        || matches!(http(port, "GET", "/todos", None), Some((200, _))),
    )
}

/// The resident memory of process `pid`, in KiB (0 when unknown).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(text: &str) -> Option<f64> {
    let (num, unit) = text
        .trim()
        .split_at(text.trim().find(|c: char| c.is_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => return None,
    })
}

/// What one load run found.
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's CPU time (user + system) per request, in µs, when measured
    /// ([`warm_load`]).
    cpu_us: Option<f64>,
}

/// The CPU time process `pid` has used so far (user + system), from `/proc/<pid>/stat`,
/// in clock ticks of 10 ms (Linux's `USER_HZ`).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's name, in parentheses: state is field 3, utime 14, stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// A 2 s warm-up of the server `pid` listens for at `url`, then the timed
/// [`wrk`] run, with the CPU the server spent per request of that run.
fn warm_load(
    pid: u32,
    url: &str,
    connections: u32,
    seconds: u32,
    script: Option<&Path>,
) -> Result<Load, String> {
    wrk(url, connections, 2, script)?;
    let before = cpu_ticks(pid);
    let mut load = wrk(url, connections, seconds, script)?;
    if let (Some(before), Some(after)) = (before, cpu_ticks(pid)) {
        let requests = load.rps * f64::from(seconds);
        load.cpu_us = Some((after - before) as f64 * 10_000.0 / requests);
    }
    Ok(load)
}

/// `wrk -t1 -c<connections> -d<seconds>s --latency [-s script] url`; fails when wrk saw
/// error responses or socket errors.
fn wrk(url: &str, connections: u32, seconds: u32, script: Option<&Path>) -> Result<Load, String> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk ({e}); install it with `apt-get install wrk`"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{text}"));
    }
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    Ok(Load {
        rps: find("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("unexpected wrk output:\n{text}"))?,
        p50_ms: find("50%")
            .and_then(|v| ms(&v))
            .ok_or("wrk printed no p50")?,
        p99_ms: find("99%")
            .and_then(|v| ms(&v))
            .ok_or("wrk printed no p99")?,
        cpu_us: None,
    })
}

/// The median of `values` (sorts them).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn run(args: Args) -> Result<(), String> {
    match args.target.as_str() {
        "aws" => aws::run(&args),
        "azure" => azure::run(&args),
        "gcp" => gcp::run(&args),
        "instructions" => instructions::run(&args.profile),
        _ => local(&args),
    }
}

/// `cargo xtask bench local`.
fn local(args: &Args) -> Result<(), String> {
    let start_count = args.starts.unwrap_or(10).max(1);
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err(
            "wrk is not installed; install it with `apt-get install wrk` and run again".into(),
        );
    }
    eprintln!("    Building release binaries (delivery-app, bare-axum-todos, trigger_latency)...");
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "delivery-app",
        "-p",
        "nube-baselines",
        "--bins",
    ]))?;
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "nube-local",
        "--example",
        "trigger_latency",
    ]))?;
    let release = root().join("target/release");
    let servers = [
        Server {
            name: "nube-local (delivery-app)",
            binary: release.join("delivery-app"),
        },
        Server {
            name: "bare axum + rusqlite",
            binary: release.join("bare-axum-todos"),
        },
    ];
    let scratch = root().join("target/nube/bench/data");
    let mut rows = Vec::new();
    for server in &servers {
        eprintln!("    Measuring {}...", server.name);
        let mut starts = Vec::new();
        for _ in 0..start_count {
            let port = free_port();
            let (mut child, took) = start(server, &scratch, port)?;
            starts.push(took.as_secs_f64() * 1000.0);
            let _ = child.kill();
            let _ = child.wait();
        }
        starts.sort_by(f64::total_cmp);
        let port = free_port();
        let (mut child, _) = start(server, &scratch, port)?;
        std::thread::sleep(Duration::from_millis(300));
        let rss = rss_kib(child.id());
        for i in 0..20 {
            let body = format!("{{\"title\":\"todo {i}\",\"description\":\"benchmark seed\"}}");
            match http(port, "POST", "/todos", Some(&body)) {
                Some((201, _)) => {}
                other => {
                    let _ = child.kill();
                    return Err(format!(
                        "{}: seeding POST /todos failed: {other:?}",
                        server.name
                    ));
                }
            }
        }
        let load = wrk(
            &format!("http://127.0.0.1:{port}/todos"),
            args.connections,
            args.seconds,
            None,
        );
        let _ = child.kill();
        let _ = child.wait();
        rows.push((server.name, starts[starts.len() / 2], rss, load?));
    }
    eprintln!("    Measuring write-to-function latency...");
    let out = Command::new(release.join("examples/trigger_latency"))
        .arg("300")
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run trigger_latency: {e}"))?;
    let latency: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "trigger_latency printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;

    let (nube, bare) = (&rows[0], &rows[1]);
    let mut md = String::new();
    md.push_str(&format!(
        "`cargo xtask bench local --seconds {} --connections {}` (wrk -t1, 20 todos stored; 2 cores shared by wrk and the server)\n\n",
        args.seconds, args.connections
    ));
    md.push_str("| server | GET /todos req/s | p50 ms | p99 ms | start to first 200 (median) ms | idle RSS MiB |\n|---|---|---|---|---|---|\n");
    for (name, start, rss, load) in &rows {
        md.push_str(&format!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} |\n",
            load.rps,
            load.p50_ms,
            load.p99_ms,
            start,
            *rss as f64 / 1024.0
        ));
    }
    md.push_str(&format!(
        "\nRatios nube / bare: throughput {:.2}, p99 {:.2}, start-up {:.2}.\n",
        nube.3.rps / bare.3.rps,
        nube.3.p99_ms / bare.3.p99_ms,
        nube.1 / bare.1
    ));
    for (key, label) in [
        (
            "blob_write_to_function_start",
            "blob write (64 KiB) → function start",
        ),
        (
            "document_create_to_function_start",
            "document create → function start",
        ),
    ] {
        let v = &latency[key];
        md.push_str(&format!(
            "\n{label}: p50 {:.2} ms, p99 {:.2} ms over {} writes",
            v["p50_ms"].as_f64().unwrap_or(f64::NAN),
            v["p99_ms"].as_f64().unwrap_or(f64::NAN),
            v["rounds"]
        ));
    }
    md.push('\n');
    let out_dir = root().join("target/nube/bench");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let report = out_dir.join("local.md");
    std::fs::write(&report, &md).map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    println!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_ticks;

    #[test]
    fn cpu_ticks_grow_with_the_work_done() {
        let me = std::process::id();
        let before = cpu_ticks(me).expect("this process's /proc/<pid>/stat reads");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let after = cpu_ticks(me).unwrap();
        // 300 ms of CPU is 30 ticks; allow for a busy machine's scheduling.
        assert!(after >= before + 10, "{before} -> {after}");
    }
}
