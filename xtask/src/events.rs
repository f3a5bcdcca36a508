//! `cargo xtask events` (being written).

/// The long help of `cargo xtask events`.
pub const LONG_ABOUT: &str = "Not written yet.";

/// Options of `cargo xtask events`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `cargo xtask events`.
pub fn run(_args: Args) -> Result<(), String> {
    Err("not written yet".into())
}
