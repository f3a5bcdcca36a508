//! `cargo xtask bench azure`: nube's custom handler (`nube_azure::run`) against a
//! custom handler written by hand with axum, both taking the Functions host's timer
//! invocation (`POST /tick` with `{Data, Metadata}`) and answering
//! `{Outputs, Logs, ReturnValue}`, in one run; prints a Markdown table (also written to
//! `target/nube/bench/azure.md`).
//!
//! - per invocation: `wrk -t1 -c<connections> -d<seconds>` posting the same payload
//!   with the headers the host adds to every call (`X-Azure-Functions-InvocationId`
//!   and the rest), after a 2 s warm-up, in `--rounds` rounds taking turns (the mean of the rounds);
//!   the time per invocation is the inverse of the throughput, and the ratio compares
//!   the two; p50 and p99 are wrk's; the server's CPU time per invocation of the timed
//!   run comes from `/proc/<pid>/stat`;
//! - start-up: exec to accepting connections on `FUNCTIONS_CUSTOMHANDLER_PORT`, median
//!   of `--starts`; idle memory (RSS) after start-up.
//!
//! Both are `examples/baselines` binaries (`nube-azure-tick`, `bare-azure-tick`) built
//! with `--release`.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

use super::{Args, Load, free_port, median, rss_kib, start_server, warm_load};
use crate::{cargo, root, run_cmd};

/// What the host posts for a timer trigger (the `Data.timer` binding as a JSON string,
/// as the host sends it).
const PAYLOAD: &str = r#"{"Data":{"timer":"{\"Schedule\":{\"AdjustForDST\":true},\"ScheduleStatus\":{\"Last\":\"2026-11-23T09:55:00+00:00\",\"Next\":\"2026-11-23T10:00:00+00:00\",\"LastUpdated\":\"2026-11-23T09:55:00.0000000+00:00\"},\"IsPastDue\":false}"},"Metadata":{"sys":{"MethodName":"tick","UtcNow":"2026-11-23T10:00:00.0012345Z","RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}"#;

struct Subject {
    name: &'static str,
    bin: &'static str,
}

impl Subject {
    fn start(&self) -> Result<(Child, u16, Duration), String> {
        let port = free_port();
        let (child, took) = start_server(
            self.name,
            Command::new(root().join("target/release").join(self.bin))
                .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
                .env_remove("RUST_LOG"),
            "accept connections",
            Duration::from_micros(200),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        )?;
        Ok((child, port, took))
    }
}

/// Posts the payload once and checks the answer is the host's 200 with `Outputs`.
fn check(port: u16, name: &str) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("{name}: {e}"))?;
    write!(
        s,
        "POST /tick HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{PAYLOAD}",
        PAYLOAD.len()
    )
    .map_err(|e| format!("{name}: {e}"))?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).map_err(|e| format!("{name}: {e}"))?;
    if out.starts_with("HTTP/1.1 200") && out.contains("\"Outputs\"") {
        Ok(())
    } else {
        Err(format!("{name} answered the timer payload with:\n{out}"))
    }
}

/// The headers the Functions host adds to every call (PROTOCOL-NOTES.md: the
/// invocation id, the host version, its `User-Agent`), as wrk script lines. One id
/// for every call: the baseline ignores it, nube reads it instead of making one.
const HOST_HEADERS: &str = "wrk.headers[\"X-Azure-Functions-InvocationId\"] = \"5c1f4e1e-9d2f-4b8e-a7a4-2f3f6f4d2b1a\"\n\
wrk.headers[\"X-Azure-Functions-HostVersion\"] = \"4.1036.1.23224\"\n\
wrk.headers[\"User-Agent\"] = \"Azure-Functions-Host/4.1036.1.23224\"\n";

pub fn run(args: &Args) -> Result<(), String> {
    let out_dir = root().join("target/nube/bench/azure");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    eprintln!("    Building nube-azure-tick and bare-azure-tick (release)");
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "nube-baselines",
        "--bin",
        "nube-azure-tick",
        "--bin",
        "bare-azure-tick",
    ]))?;
    let script = out_dir.join("post-timer.lua");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n{HOST_HEADERS}wrk.body = [[{PAYLOAD}]]\n"
    );
    std::fs::write(&script, lua).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let subjects = [
        Subject {
            name: "nube (`nube_azure::run`)",
            bin: "nube-azure-tick",
        },
        Subject {
            name: "bare axum custom handler",
            bin: "bare-azure-tick",
        },
    ];

    let starts = args.starts.unwrap_or(10).max(1);
    eprintln!("    Timing start-up (exec to accepting connections), {starts} each...");
    let mut startup: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    for _ in 0..starts {
        for (k, subject) in subjects.iter().enumerate() {
            let (mut child, port, took) = subject.start()?;
            check(port, subject.name)?;
            std::thread::sleep(Duration::from_millis(200));
            rss[k].push(rss_kib(child.id()) as f64 / 1024.0);
            startup[k].push(took.as_secs_f64() * 1000.0);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    let rounds = args.rounds.clamp(1, 5) as usize;
    eprintln!(
        "    Load: wrk -t1 -c{} -d{}s POST /tick, {rounds} rounds each...",
        args.connections, args.seconds
    );
    let mut loads: Vec<Vec<Load>> = (0..subjects.len()).map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (k, subject) in subjects.iter().enumerate() {
            let (mut child, port, _) = subject.start()?;
            let url = format!("http://127.0.0.1:{port}/tick");
            let load = warm_load(
                child.id(),
                &url,
                args.connections,
                args.seconds,
                Some(&script),
            );
            let _ = child.kill();
            let _ = child.wait();
            loads[k].push(load.map_err(|e| format!("{}: {e}", subject.name))?);
        }
    }
    let mean = |v: &[Load], f: fn(&Load) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let mut md = format!(
        "`cargo xtask bench azure --seconds {} --connections {} --rounds {rounds} --starts {starts}` \
         (wrk -t1 on the same 2 cores posting the host's timer invocation with its headers; `--release` builds)\n\n\
         | | invocations/s | µs per invocation (1/throughput × connections) | server CPU µs per invocation | p50 ms | p99 ms | start-up ms (exec to accepting, median) | idle RSS MiB |\n|---|---|---|---|---|---|---|---|\n",
        args.seconds, args.connections
    );
    let mut rows = Vec::new();
    for (k, subject) in subjects.iter().enumerate() {
        let rps = mean(&loads[k], |l| l.rps);
        let row = [
            rps,
            1e6 / rps * f64::from(args.connections),
            mean(&loads[k], |l| l.p50_ms),
            mean(&loads[k], |l| l.p99_ms),
            median(&mut startup[k]),
            median(&mut rss[k]),
            mean(&loads[k], |l| l.cpu_us.unwrap_or(f64::NAN)),
        ];
        md.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |\n",
            subject.name, row[0], row[1], row[6], row[2], row[3], row[4], row[5]
        ));
        rows.push(row);
    }
    md.push_str(&format!(
        "\nnube / bare: time per invocation {:.2} (goal ≤ 1.05), server CPU per invocation {:.2}, p99 {:.2}, start-up {:.2}, idle memory {:.2}.\n",
        rows[1][0] / rows[0][0],
        rows[0][6] / rows[1][6],
        rows[0][3] / rows[1][3],
        rows[0][4] / rows[1][4],
        rows[0][5] / rows[1][5],
    ));
    let report = root().join("target/nube/bench/azure.md");
    std::fs::write(&report, &md).map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    println!("{md}");
    Ok(())
}
