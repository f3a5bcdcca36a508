//! The baseline of `cargo xtask bench azure`: a custom handler written by hand with
//! axum, as Microsoft's samples do it: `POST /tick` reads the host's `{Data, Metadata}`
//! payload (the timer binding's JSON, decoded), and answers
//! `{"Outputs": {}, "Logs": [], "ReturnValue": null}` on
//! `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`. The nube app doing the same work is
//! `nube-azure-tick.rs`.

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// The host's invocation request.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invocation {
    data: Value,
    #[allow(dead_code)]
    metadata: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Timer {
    #[allow(dead_code)]
    is_past_due: bool,
}

/// `POST /tick`: reads the timer binding, answers an empty invocation response (also
/// what `cargo bench -p nube-azure --bench invocation` runs in process).
pub async fn tick(Json(invocation): Json<Invocation>) -> Json<Value> {
    let timer = match &invocation.data["timer"] {
        Value::String(text) => serde_json::from_str::<Timer>(text).ok(),
        other => serde_json::from_value::<Timer>(other.clone()).ok(),
    };
    std::hint::black_box(timer);
    Json(json!({"Outputs": {}, "Logs": [], "ReturnValue": null}))
}

#[tokio::main]
async fn main() {
    let port = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").unwrap_or_else(|_| "8080".into());
    let app = Router::new().route("/tick", post(tick));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("the port is free");
    axum::serve(listener, app).await.expect("the server runs");
}
