//! What a function declares it uses (`App::function_collections`,
//! `App::function_buckets`): it reaches those and its trigger's own, is refused the
//! rest as a cloud would refuse it, and the manifest carries it for the packagers.

use nube::http::Routes;
use nube::testing::TestApp;
use nube::{App, BlobCreated, Context, ErrorKind, Result};
use serde_json::{Value, json};

async fn thumbnails(_blob: BlobCreated, _ctx: Context) -> Result<()> {
    Ok(())
}

fn app() -> App {
    App::new("shop")
        .collection("orders")
        .collection("payments")
        .bucket("uploads")
        .bucket("exports")
        .http("api", Routes::new().get("/", || async { "ok" }))
        .http("open", Routes::new().get("/open", || async { "ok" }))
        .on_blob_created("thumbnails", "uploads", "", thumbnails)
        .function_collections("api", ["orders"])
        .function_buckets("api", ["exports"])
        .function_collections("thumbnails", ["orders"])
}

#[test]
fn a_declaring_function_may_use_what_it_declared_and_its_trigger_s_own() {
    let app = app();
    app.validate().unwrap();
    let api = app.function("api").unwrap();
    assert!(api.may_use_collection("orders") && api.may_use_bucket("exports"));
    assert!(!api.may_use_collection("payments") && !api.may_use_bucket("uploads"));
    let thumbnails = app.function("thumbnails").unwrap();
    assert!(thumbnails.may_use_bucket("uploads"), "its trigger's bucket");
    assert!(!thumbnails.may_use_bucket("exports"));
    let open = app.function("open").unwrap();
    assert!(open.uses().is_none());
    assert!(open.may_use_collection("payments") && open.may_use_bucket("uploads"));
}

#[test]
fn the_manifest_carries_what_each_function_uses() {
    let manifest = serde_json::to_value(app().manifest()).unwrap();
    let uses = |name: &str| -> Value {
        manifest["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["uses"]
            .clone()
    };
    assert_eq!(
        uses("api"),
        json!({"collections": ["orders"], "buckets": ["exports"]})
    );
    assert_eq!(
        uses("thumbnails"),
        json!({"collections": ["orders"], "buckets": ["uploads"]})
    );
    assert_eq!(uses("open"), Value::Null, "absent: it reaches everything");
    let read: nube::manifest::Manifest = serde_json::from_value(manifest).unwrap();
    assert_eq!(read, app().manifest());
}

#[test]
fn declarations_name_declared_resources_of_declared_functions() {
    let e = App::new("shop")
        .collection("orders")
        .function_collections("api", ["orders"])
        .http("api", Routes::new().get("/", || async { "ok" }))
        .function_collections("api", ["ledger"])
        .function_buckets("api", ["exports"])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("function_collections(\"api\"): no such function is declared before it"),
        "{e}"
    );
    assert!(e.contains("collection \"ledger\""), "{e}");
    assert!(e.contains("add .bucket(\"exports\")"), "{e}");
}

#[tokio::test]
async fn a_bucket_the_function_did_not_declare_is_an_error_naming_the_fix() {
    let test = TestApp::new(app());
    let api = test.context("api");
    assert!(api.bucket("exports").is_ok());
    let e = api.bucket("uploads").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(
        e.operator_message()
            .contains(".function_buckets(\"api\", [\"uploads\"])"),
        "{}",
        e.operator_message()
    );
    // Not through the Context's resources either.
    assert!(api.resources().bucket("uploads").is_err());
    assert!(api.resources().bucket("exports").is_ok());
    // Functions that declared nothing, and the trigger's own bucket.
    assert!(test.context("open").bucket("uploads").is_ok());
    assert!(test.context("thumbnails").bucket("uploads").is_ok());
}

#[tokio::test]
async fn a_collection_the_function_did_not_declare_panics_under_test() {
    let test = TestApp::new(app());
    let api = test.context("api");
    let _ = api.collection::<Value>("orders");
    let _ = test.context("open").collection::<Value>("payments");
    for refused in [
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = api.collection::<Value>("payments");
        })),
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = api.resources().collection::<Value>("payments");
        })),
    ] {
        let message = nube::panic_message(&*refused.unwrap_err());
        assert!(
            message.contains(".function_collections(\"api\", [\"payments\"])"),
            "{message}"
        );
    }
    // The app's own resources (the harness's) are not any one function's.
    let _ = test.collection::<Value>("payments");
}
