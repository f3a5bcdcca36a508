//! `cargo xtask invoke` (being written).

/// The long help of `cargo xtask invoke`.
pub const LONG_ABOUT: &str = "Not written yet.";

/// Options of `cargo xtask invoke`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `cargo xtask invoke`.
pub fn run(_args: Args) -> Result<(), String> {
    Err("not written yet".into())
}
