//! nube's side of `cargo xtask bench azure`: an app with one timer function, `tick`,
//! that does nothing, served as the Functions host runs a custom handler by
//! `nube_azure::run` (nube-azure without store features). The bare axum handler
//! reading the same `{Data, Metadata}` payload is `bare-azure-tick.rs`.

use nube::{App, Context, TimerTick};

async fn tick(_tick: TimerTick, _ctx: Context) -> Result<(), nube::Error> {
    Ok(())
}

/// The app: `tick` every five minutes.
fn app() -> App {
    App::new("tick").timer("tick", "*/5 * * * *", tick)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    nube_azure::run(app()).await
}
