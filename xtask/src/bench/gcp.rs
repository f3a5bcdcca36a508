//! `cargo xtask bench gcp`: nube's Cloud Run server (`nube_gcp::run`) against a bare
//! axum server, the same axum server with tower-http layers giving each request what nube
//! gives it (a span, an id echoed in the response, a time limit, a panic guard), and
//! Google's Node.js Functions Framework, all answering `GET /hello` with `hello`, in one
//! run; prints a Markdown table (also written to
//! `target/nube/bench/gcp.md`).
//!
//! - throughput and latency: `wrk -t1 -c<connections> -d<seconds>` per server, after a
//!   2 s warm-up, in `--rounds` rounds taking turns (the mean of the rounds), and the
//!   server's CPU time per request of the timed run (from `/proc/<pid>/stat`), which
//!   moves less with the machine's load than throughput does (`TOKIO_WORKER_THREADS`
//!   passes through, for comparing one worker thread with two);
//! - cold start: exec to the first `200` from `GET /hello`, median of `--starts`;
//! - idle memory (RSS) after start-up.
//!
//! The Rust servers are `examples/baselines` binaries (`nube-gcp-hello`,
//! `bare-axum-hello`, `bare-axum-guarded-hello`) built with the `release` profile; the
//! Node function is `exports.hello = (req, res) => res.send("hello")` run by
//! `functions-framework` (npm `@google-cloud/functions-framework`, installed once into
//! `.tools/npm` with the other npm tools: [`tools::ensure_npm_tools`]).

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::{Args, Load, free_port, http, median, rss_kib, start_server, warm_load};
use crate::{cargo, root, run_cmd, tools};

struct Subject {
    name: &'static str,
    command: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Subject {
    /// Starts the server and waits for its first `200`; returns it and the time taken.
    fn start(&self) -> Result<(Child, u16, Duration), String> {
        let port = free_port();
        let mut command = Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .env("PORT", port.to_string())
            // Each server logs as it does by default (nube: `info`).
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let (child, took) = start_server(
            self.name,
            &mut command,
            "answer GET /hello",
            Duration::from_micros(300),
            || matches!(http(port, "GET", "/hello", None), Some((200, _))),
        )?;
        Ok((child, port, took))
    }
}

/// The version of the Functions Framework [`tools::FUNCTIONS_FRAMEWORK`] pins.
fn framework_version() -> &'static str {
    tools::FUNCTIONS_FRAMEWORK
        .rsplit_once('@')
        .map_or("", |(_, version)| version)
}

fn write_node_function(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = [
        (
            "index.js",
            "exports.hello = (req, res) => {\n  res.send('hello');\n};\n",
        ),
        (
            "package.json",
            "{\"name\": \"hello\", \"version\": \"1.0.0\", \"main\": \"index.js\"}\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<(), String> {
    let out_dir = root().join("target/nube/bench/gcp");
    eprintln!("    Building nube-gcp-hello, bare-axum-hello and bare-axum-guarded-hello (release)");
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "nube-baselines",
        "--bin",
        "nube-gcp-hello",
        "--bin",
        "bare-axum-hello",
        "--bin",
        "bare-axum-guarded-hello",
    ]))?;
    let framework = tools::npm_program(&tools::ensure_npm_tools()?, "functions-framework");
    let node_dir = out_dir.join("node-hello");
    write_node_function(&node_dir)?;
    let built = root().join("target/release");
    let mut subjects = [
        Subject {
            name: "nube (`nube_gcp::run`)",
            command: vec![built.join("nube-gcp-hello").display().to_string()],
            env: vec![
                ("K_SERVICE", "hello".into()),
                ("K_REVISION", "hello-00001-abc".into()),
            ],
        },
        Subject {
            name: "bare axum",
            command: vec![built.join("bare-axum-hello").display().to_string()],
            env: vec![],
        },
        Subject {
            name: "axum + tower-http span, request id, timeout, panic guard",
            command: vec![built.join("bare-axum-guarded-hello").display().to_string()],
            env: vec![],
        },
        Subject {
            name: "Node Functions Framework",
            command: vec![
                framework.display().to_string(),
                "--target=hello".into(),
                format!("--source={}", node_dir.display()),
            ],
            env: vec![("NODE_ENV", "production".into())],
        },
    ];
    if let Some(filter) = &args.rust_log {
        for subject in &mut subjects[..3] {
            subject.env.push(("RUST_LOG", filter.clone()));
        }
    }

    let starts = args.starts.unwrap_or(10).max(1);
    eprintln!("    Timing cold starts (exec to first 200), {starts} each...");
    let mut cold: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    for _ in 0..starts {
        for (k, subject) in subjects.iter().enumerate() {
            let (mut child, _, took) = subject.start()?;
            std::thread::sleep(Duration::from_millis(200));
            rss[k].push(rss_kib(child.id()) as f64 / 1024.0);
            cold[k].push(took.as_secs_f64() * 1000.0);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    let rounds = args.rounds.clamp(1, 5) as usize;
    eprintln!(
        "    Load: wrk -t1 -c{} -d{}s GET /hello, {rounds} rounds each...",
        args.connections, args.seconds
    );
    let mut loads: Vec<Vec<Load>> = (0..subjects.len()).map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (k, subject) in subjects.iter().enumerate() {
            let (mut child, port, _) = subject.start()?;
            let url = format!("http://127.0.0.1:{port}/hello");
            let load = warm_load(child.id(), &url, args.connections, args.seconds, None);
            let _ = child.kill();
            let _ = child.wait();
            loads[k].push(load.map_err(|e| format!("{}: {e}", subject.name))?);
        }
    }

    let mean = |v: &[Load], f: fn(&Load) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let rows: Vec<[f64; 6]> = (0..subjects.len())
        .map(|k| {
            [
                mean(&loads[k], |l| l.rps),
                mean(&loads[k], |l| l.p50_ms),
                mean(&loads[k], |l| l.p99_ms),
                median(&mut cold[k]),
                median(&mut rss[k]),
                mean(&loads[k], |l| l.cpu_us.unwrap_or(f64::NAN)),
            ]
        })
        .collect();
    let mut md = format!(
        "`cargo xtask bench gcp --seconds {} --connections {} --rounds {rounds} --starts {starts}{}` \
         (wrk -t1 on the same 2 cores; `GET /hello` answering `hello`; Rust servers built with `--release`; \
         Functions Framework {} on Node {})\n\n",
        args.seconds,
        args.connections,
        args.rust_log
            .as_ref()
            .map(|f| format!(" --rust-log {f}"))
            .unwrap_or_default(),
        framework_version(),
        node_version()
    );
    md.push_str("| | req/s | server CPU µs per request | p50 ms | p99 ms | cold start ms (exec to first 200, median) | idle RSS MiB |\n|---|---|---|---|---|---|---|\n");
    for (k, subject) in subjects.iter().enumerate() {
        let r = rows[k];
        md.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |\n",
            subject.name, r[0], r[5], r[1], r[2], r[3], r[4]
        ));
    }
    let (nube, bare, guarded, node) = (rows[0], rows[1], rows[2], rows[3]);
    md.push_str(&format!(
        "\nnube / bare axum: throughput {:.2} (goal ≥ 0.95), server CPU per request {:.2}, p99 {:.2}. \
         nube / axum with tower-http's span, request id, timeout and panic guard: throughput {:.2}, \
         server CPU per request {:.2}. \
         nube / Node Functions Framework: throughput {:.1}× (goal ≥ 10×), cold start {:.1}× faster (goal ≥ 20×), \
         idle memory {:.1}× smaller.\n",
        nube[0] / bare[0],
        nube[5] / bare[5],
        nube[2] / bare[2],
        nube[0] / guarded[0],
        nube[5] / guarded[5],
        nube[0] / node[0],
        node[3] / nube[3],
        node[4] / nube[4],
    ));
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let report = root().join("target/nube/bench/gcp.md");
    std::fs::write(&report, &md).map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    println!("{md}");
    Ok(())
}

fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}
