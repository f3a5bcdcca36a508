//! The two environment variables by which `cargo xtask bench instructions` runs one
//! side of an adapter's in-process bench for a set number of rounds. The benches
//! include this file (`#[path]`), so that both ends read the same names.

/// Names the one side to run (`nube`, `bare`...); the bench then prints nothing.
pub const ONLY: &str = "NUBE_BENCH_ONLY";
/// How many rounds to run.
pub const ROUNDS: &str = "NUBE_BENCH_ROUNDS";

/// What a bench was asked to run.
#[allow(dead_code)] // xtask reads only the names; the benches use the rest.
pub struct Knobs {
    /// `NUBE_BENCH_ROUNDS`, else the bench's default.
    pub rounds: usize,
    /// `NUBE_BENCH_ONLY`.
    pub only: Option<String>,
}

#[allow(dead_code)]
impl Knobs {
    /// The knobs from the environment, `default_rounds` when `NUBE_BENCH_ROUNDS` is
    /// unset or not a number.
    pub fn from_env(default_rounds: usize) -> Self {
        Self {
            rounds: std::env::var(ROUNDS)
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(default_rounds),
            only: std::env::var(ONLY).ok(),
        }
    }

    /// Whether `side` runs: every side when none is named.
    pub fn runs(&self, side: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == side)
    }
}
