//! Every Azure sample in `$NUBE_CONFORMANCE_DIR/azure` (recursively, `*.json` and
//! `*.http.txt`) against the runtime and the descriptors:
//!
//! - invocation requests (`{Data, Metadata}`, bare or as the body of a raw HTTP
//!   request to `/<FunctionName>`) are run through the custom-handler service: the
//!   triggers nube takes are decoded and run, the others (queues...) refused with `400`
//!   and a reason naming the payload's trigger;
//! - raw client requests to `/api/...` are served as forwarded HTTP requests;
//! - `function.json` files: each trigger binding is one nube renders (and nube's
//!   descriptor for it has every property the sample sets) or is refused, saying why;
//! - `host.json`, `local.settings.json` and invocation responses are checked against
//!   what nube renders and answers;
//! - other files (sample servers' source) are listed as not payloads.
//!
//! Skipped, saying so, when `NUBE_CONFORMANCE_DIR` is not set. Run it with
//! `NUBE_CONFORMANCE_DIR=/path/to/conformance cargo test -p nube-azure --test conformance -- --nocapture`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use nube::axum::routing::any;
use nube::http::Routes;
use nube::store::MemoryStore;
use nube::{App, BlobCreated, Context, DocumentCreated, DocumentStore, Resources, TimerTick};
use nube_azure::Runtime;
use nube_azure::descriptors;
use nube_azure::dispatch::describe;
use nube_azure::payload::InvocationRequest;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn echo(method: http::Method, uri: http::Uri, body: bytes::Bytes) -> nube::http::Json<Value> {
    nube::http::Json(json!({"method": method.as_str(), "path": uri.path(), "len": body.len()}))
}

async fn record(ctx: &Context, id: &str, value: Value) -> nube::Result<()> {
    let id = id.replace(['/', '\\', '?', '#', ' '], "_");
    ctx.collection::<Value>("seen").put(&id, &value).await?;
    Ok(())
}

fn app() -> App {
    App::new("conformance")
        .http(
            "api",
            Routes::new()
                .route("/", any(echo))
                .route("/{*path}", any(echo)),
        )
        .http("health", Routes::new().get("/health", echo))
        .timer(
            "tick",
            "rate(5 minutes)",
            |t: TimerTick, ctx: Context| async move {
                record(&ctx, &t.event_id, json!({"time": t.scheduled_time})).await
            },
        )
        .on_blob_created(
            "thumbs",
            "uploads",
            "",
            |b: BlobCreated, ctx: Context| async move {
                record(&ctx, &b.event_id, json!({"key": b.key})).await
            },
        )
        .on_document_created(
            "on-doc",
            "docs",
            |d: DocumentCreated<Value>, ctx: Context| async move {
                record(&ctx, &d.event_id, json!({"id": d.id})).await
            },
        )
        .collection("seen")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// An invocation or request that ran.
    Decoded,
    /// A payload or binding nube does not take, refused with a reason.
    Refused,
    /// A descriptor or response checked against nube's.
    Checked,
    /// Not a payload (source of sample servers).
    NotPayload,
}

fn samples(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            samples(&path, out);
        } else {
            out.push(path);
        }
    }
}

struct Runner {
    router: axum::Router,
    store: Arc<MemoryStore>,
}

impl Runner {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn seen(&self) -> usize {
        self.store
            .query("seen", &nube::Query::new().limit(1000))
            .await
            .unwrap()
            .documents
            .len()
    }

    /// One invocation request: sent to the function of its trigger.
    async fn invocation(&self, file: &str, body: &str) -> (Outcome, String) {
        let request = InvocationRequest::parse(body.as_bytes())
            .unwrap_or_else(|e| panic!("{file}: not an invocation request: {e}"));
        let shape = describe(&request);
        let function = match shape {
            s if s.contains("httpTrigger") => "api",
            s if s.contains("timerTrigger") => "tick",
            s if s.contains("blobTrigger") => "thumbs",
            s if s.contains("cosmosDBTrigger") => "on-doc",
            _ => "tick",
        };
        let before = self.seen().await;
        let req = Request::post(format!("/{function}"))
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", "conformance-inv")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let (status, answer) = self.send(req).await;
        let logs = answer["Logs"].as_array().cloned().unwrap_or_default();
        if status == StatusCode::OK {
            if function == "api" {
                let res = &answer["Outputs"]["res"];
                assert!(res["statusCode"].is_string(), "{file}: {answer}");
                let echoed: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
                assert!(echoed["path"].is_string(), "{file}: {echoed}");
                (
                    Outcome::Decoded,
                    format!("{shape} → {} {}", echoed["method"], echoed["path"]),
                )
            } else {
                assert!(
                    self.seen().await > before,
                    "{file}: the function did not run"
                );
                (Outcome::Decoded, shape.to_owned())
            }
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{file}: {answer}");
            let reason = logs
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                reason.contains(shape),
                "{file}: the refusal does not say what it got: {reason}"
            );
            assert!(
                reason.contains(&format!("{function:?}")),
                "{file}: {reason}"
            );
            (Outcome::Refused, reason)
        }
    }

    /// A raw HTTP request (`METHOD url HTTP/1.1`, headers, blank line, body).
    async fn raw_http(&self, file: &str, text: &str) -> (Outcome, String) {
        let (head, body) = text
            .split_once("\n\n")
            .or_else(|| text.split_once("\r\n\r\n"))
            .unwrap_or((text, ""));
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default();
        let mut words = first.split_whitespace();
        let method = words.next().unwrap_or("GET");
        let url = words.next().unwrap_or("/");
        let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
        let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
        if body.trim_start().starts_with('{')
            && body.contains("\"Data\"")
            && !path.starts_with("/api/")
        {
            // The host's call to the handler: the body is the invocation request.
            return self.invocation(file, body).await;
        }
        let mut req = Request::builder().method(method).uri(path);
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                req = req.header(k.trim(), v.trim());
            }
        }
        let (status, echoed) = self
            .send(req.body(Body::from(body.to_owned())).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{file}: {echoed}");
        assert_eq!(echoed["method"], method, "{file}");
        assert!(
            !echoed["path"].as_str().unwrap().starts_with("/api"),
            "{file}: prefix kept"
        );
        (
            Outcome::Decoded,
            format!("forwarded {method} {path} → {}", echoed["path"]),
        )
    }
}

/// The trigger bindings nube renders, by type, with the property names of nube's own
/// descriptor for them.
fn rendered_bindings() -> Vec<(String, Vec<String>)> {
    let manifest = app().manifest();
    descriptors::function_jsons(&manifest)
        .unwrap()
        .into_iter()
        .flat_map(|(_, d)| d["bindings"].as_array().unwrap().clone())
        .map(|b| {
            let keys = b.as_object().unwrap().keys().cloned().collect();
            (b["type"].as_str().unwrap().to_owned(), keys)
        })
        .collect()
}

fn function_json(file: &str, value: &Value) -> (Outcome, String) {
    let ours = rendered_bindings();
    let mut notes = Vec::new();
    let mut refused = false;
    for binding in value["bindings"].as_array().unwrap() {
        let kind = binding["type"].as_str().unwrap_or_default();
        let direction = binding["direction"].as_str().unwrap_or_default();
        let keys: Vec<&String> = ours
            .iter()
            .filter(|(t, _)| t.eq_ignore_ascii_case(kind))
            .flat_map(|(_, k)| k)
            .collect();
        match (!keys.is_empty()).then_some(keys) {
            Some(keys) => {
                for key in binding.as_object().unwrap().keys() {
                    // `dataType` is a choice (nube sends blobs as binary); route and
                    // methods are nube's own.
                    let ours_too = keys.iter().any(|k| k.eq_ignore_ascii_case(key));
                    assert!(
                        ours_too || key == "dataType",
                        "{file}: nube's {kind} binding has no {key:?}"
                    );
                }
                notes.push(format!("{kind} ({direction}): rendered by nube"));
            }
            None if kind.ends_with("Trigger") => {
                refused = true;
                notes.push(format!("{kind}: not a trigger nube takes (refused)"));
            }
            None => notes.push(format!("{kind} ({direction}): an output nube does not use")),
        }
    }
    (
        if refused {
            Outcome::Refused
        } else {
            Outcome::Checked
        },
        notes.join("; "),
    )
}

fn host_json(file: &str, value: &Value) -> (Outcome, String) {
    assert_eq!(value["version"], "2.0", "{file}");
    let section = value
        .get("customHandler")
        .or_else(|| value.get("httpWorker"));
    let section = section.unwrap_or_else(|| panic!("{file}: no customHandler"));
    assert!(
        section["description"]["defaultExecutablePath"].is_string(),
        "{file}"
    );
    let ours = descriptors::host_json(&app().manifest(), "app");
    assert_eq!(ours["version"], value["version"]);
    assert!(ours["customHandler"]["description"]["defaultExecutablePath"].is_string());
    if let Some(bundle) = value.get("extensionBundle") {
        assert_eq!(ours["extensionBundle"]["id"], bundle["id"], "{file}");
    }
    let forwarding = ["enableForwardingHttpRequest", "enableProxyingHttpRequest"]
        .iter()
        .find(|k| section.get(**k).is_some_and(|v| v == true));
    let forwarding = match (forwarding, value.get("httpWorker")) {
        (Some(k), _) => *k,
        // The legacy section always forwards HTTP-only functions.
        (None, Some(_)) => "httpWorker (always)",
        (None, None) => "off",
    };
    let prefix = nube_azure::http::route_prefix(value);
    (
        Outcome::Checked,
        format!("route prefix {prefix:?}, forwarding: {forwarding}"),
    )
}

#[tokio::test]
async fn every_azure_sample() {
    let Some(dir) = std::env::var_os("NUBE_CONFORMANCE_DIR") else {
        println!("skipped: NUBE_CONFORMANCE_DIR is not set");
        return;
    };
    let root = PathBuf::from(dir).join("azure");
    assert!(root.is_dir(), "{} is not a directory", root.display());
    let store = Arc::new(MemoryStore::new());
    let runner = Runner {
        router: Runtime::new(app(), Resources::new(store.clone()), "api").into_router(),
        store,
    };
    let mut files = Vec::new();
    samples(&root, &mut files);
    let mut results: Vec<(String, Outcome, String)> = Vec::new();
    let mut invocations = 0;
    for path in &files {
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (outcome, note) = if name.ends_with(".http.txt") {
            invocations += 1;
            runner.raw_http(&file, &text).await
        } else if name.ends_with(".json") {
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            if value.get("Data").is_some() || value.get("Metadata").is_some() {
                invocations += 1;
                runner.invocation(&file, &text).await
            } else if value.get("bindings").is_some() {
                function_json(&file, &value)
            } else if value.get("customHandler").is_some() || value.get("httpWorker").is_some() {
                host_json(&file, &value)
            } else if value.get("Outputs").is_some() {
                // Responses: nube answers with the same three keys.
                for key in ["Outputs", "Logs", "ReturnValue"] {
                    assert!(value.get(key).is_some(), "{file}: no {key}");
                }
                (
                    Outcome::Checked,
                    "an invocation response: same keys as nube's".into(),
                )
            } else if value.pointer("/Values/FUNCTIONS_WORKER_RUNTIME").is_some() {
                let ours = descriptors::local_settings_json(&app().manifest());
                assert_eq!(
                    ours["Values"]["FUNCTIONS_WORKER_RUNTIME"],
                    value["Values"]["FUNCTIONS_WORKER_RUNTIME"]
                );
                assert_eq!(ours["IsEncrypted"], value["IsEncrypted"]);
                (
                    Outcome::Checked,
                    "local.settings.json: same runtime as nube's".into(),
                )
            } else {
                panic!("{file}: a JSON sample of an unknown kind; teach this test about it")
            }
        } else {
            (Outcome::NotPayload, "source of a sample handler".into())
        };
        results.push((file, outcome, note));
    }
    let count = |o: Outcome| results.iter().filter(|r| r.1 == o).count();
    println!("Azure conformance samples under {}:", root.display());
    for (file, outcome, note) in &results {
        println!("  {:<10} {file}: {note}", format!("{outcome:?}"));
    }
    println!(
        "{} samples ({invocations} requests): {} decoded, {} refused, {} checked, {} not payloads",
        results.len(),
        count(Outcome::Decoded),
        count(Outcome::Refused),
        count(Outcome::Checked),
        count(Outcome::NotPayload)
    );
    assert!(
        invocations > 0,
        "no invocation request samples under {}",
        root.display()
    );
    assert!(count(Outcome::Decoded) > 0);
}
