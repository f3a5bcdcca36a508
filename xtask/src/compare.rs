//! `cargo xtask compare` (being written).

/// The long help of `cargo xtask compare`.
pub const LONG_ABOUT: &str = "Not written yet.";

/// Options of `cargo xtask compare`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `cargo xtask compare`.
pub fn run(_args: Args) -> Result<(), String> {
    Err("not written yet".into())
}
