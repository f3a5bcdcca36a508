//! `cargo xtask bench instructions`: the adapters' in-process benches under
//! `valgrind --tool=callgrind`, counting the instructions one request costs on nube's
//! side and on the baseline's. Unlike time, the count does not move with what else the
//! machine is doing, so two runs of the same code agree, and a change's effect shows
//! even on a busy machine (the count leaves out cache misses and contention between
//! threads: the socket benches see those).
//!
//! Each bench runs one side only when `NUBE_BENCH_ONLY` names it, `NUBE_BENCH_ROUNDS`
//! rounds of 20,000 requests; one round's count is the count of two rounds minus that
//! of one, which takes away start-up. `--profile release-small` counts the build
//! `cargo xtask package` ships (opt-level "z"), the default `bench` opt-level 3. Prints
//! a Markdown table (also written to `target/nube/bench/instructions.md`).

use std::process::{Command, Stdio};

use crate::{cargo, root};

/// The requests in one round of every in-process bench.
const PER_ROUND: u64 = 20_000;

/// An in-process bench: its package, its name, and the sides it runs.
struct Bench {
    package: &'static str,
    bench: &'static str,
    sides: &'static [&'static str],
}

const BENCHES: [Bench; 3] = [
    Bench {
        package: "nube-gcp",
        bench: "server",
        sides: &["nube", "traced", "bare"],
    },
    Bench {
        package: "nube-azure",
        bench: "invocation",
        sides: &["nube", "bare"],
    },
    Bench {
        package: "nube-aws",
        bench: "invocation",
        // `raw-value`: the `Box<RawValue>` pass lambda_runtime made over the payload
        // before `nube_aws::payload` took its bytes instead.
        sides: &["nube", "bare", "raw-value"],
    },
];

/// Builds `bench` with `profile` (one package per cargo run so that features do not
/// unify) and returns its executable.
fn build(bench: &Bench, profile: &str) -> Result<String, String> {
    eprintln!(
        "    Building {} --bench {} (profile {profile})",
        bench.package, bench.bench
    );
    let out = cargo()
        .args(["bench", "-p", bench.package, "--bench", bench.bench])
        .args(["--profile", profile, "--no-run", "--message-format=json"])
        // release-small strips symbols, which valgrind needs to name nothing but to
        // count; kept so that a profile of the same build can be read too.
        .env("CARGO_PROFILE_RELEASE_SMALL_STRIP", "false")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {} --bench {} failed (see above)",
            bench.package, bench.bench
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["target"]["name"] == bench.bench)
        .find_map(|m| m["executable"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            format!(
                "cargo built {} --bench {} but named no executable",
                bench.package, bench.bench
            )
        })
}

/// The instructions `executable` runs for `rounds` rounds of `side`.
fn count(executable: &str, side: &str, rounds: u64) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(executable)
        .env(super::knobs::ONLY, side)
        .env(super::knobs::ROUNDS, rounds.to_string())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run valgrind ({e}); install it with `apt-get install valgrind`")
        })?;
    let report = String::from_utf8_lossy(&out.stderr);
    report
        .lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, n)| n.trim().parse().ok())
        })
        .flatten()
        .filter(|_| out.status.success())
        .ok_or_else(|| format!("valgrind did not count {executable} ({side}):\n{report}"))
}

pub fn run(profile: &str) -> Result<(), String> {
    let mut md = format!(
        "`cargo xtask bench instructions --profile {profile}` (instructions per request under \
         `valgrind --tool=callgrind`: 2 rounds of 20,000 minus 1)\n\n\
         | bench | side | instructions per request |\n|---|---|---|\n",
    );
    for bench in &BENCHES {
        let executable = build(bench, profile)?;
        for side in bench.sides {
            eprintln!(
                "    Counting {} --bench {} ({side}), 1 and 2 rounds under callgrind...",
                bench.package, bench.bench
            );
            let one = count(&executable, side, 1)?;
            let two = count(&executable, side, 2)?;
            let per_request = two.saturating_sub(one) as f64 / PER_ROUND as f64;
            md.push_str(&format!(
                "| `cargo bench -p {} --bench {}` | {side} | {per_request:.0} |\n",
                bench.package, bench.bench
            ));
        }
    }
    let report = root().join("target/nube/bench/instructions.md");
    std::fs::create_dir_all(report.parent().expect("a parent"))
        .map_err(|e| format!("cannot create {}: {e}", report.display()))?;
    std::fs::write(&report, &md).map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    println!("{md}");
    Ok(())
}
