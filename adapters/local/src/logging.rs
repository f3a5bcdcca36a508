//! Log output: readable lines by default, JSON lines with `NUBE_LOG_FORMAT=json`.
//! Every line inside an invocation carries its function and invocation id (the
//! invocation span's fields). `RUST_LOG` filters as usual (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; does nothing if one is installed already.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("NUBE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
