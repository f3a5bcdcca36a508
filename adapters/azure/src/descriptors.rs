//! The function app's descriptors, rendered from an app's [`Manifest`] (pure functions,
//! for the packager):
//!
//! | manifest | descriptor |
//! |---|---|
//! | the app | `host.json` ([`host_json`]): version `2.0`, `customHandler.description.defaultExecutablePath`, `enableForwardingHttpRequest` when the app has HTTP functions (each gets only an `httpTrigger` and an `http` output, so the host can forward all of them), the extension bundle `[4.*, 5.0.0)` when a binding needs it (blob, Cosmos DB; HTTP and timer are built in), route prefix `api`, `functionTimeout` = the longest function timeout + 1 s, `poisonBlobThreshold` = `maxAttempts` |
//! | HTTP function | `httpTrigger` `req` + `http` `res` ([`function_json`]): one route per function (the only route, or the routes' common literal prefix + `/{*path}`), methods (none for `ANY`), `authLevel` `function` unless the app is `anonymousHttp` |
//! | timer | `timerTrigger` with [`Schedule::to_azure`]'s 6-field NCRONTAB; an exponential retry policy of `maxAttempts - 1` retries |
//! | blob created | `blobTrigger` on `%NUBE_BUCKET_<B>%/<prefix>{name}`, `dataType: binary`, connection `AzureWebJobsStorage` |
//! | document created | `cosmosDBTrigger` (extension v4 names): `connection` `NUBE_COSMOS`, `databaseName` `%NUBE_COSMOS_DATABASE%`, `containerName` `%NUBE_COLLECTION_<C>%`, `leaseContainerName` `leases` (prefix: the function's name), `createLeaseContainerIfNotExists`, `maxItemsPerInvocation` [`COSMOS_BATCH_SIZE`]; retry as timers |
//! | resources | `local.settings.json` ([`local_settings_json`]): `FUNCTIONS_WORKER_RUNTIME=Custom` and every setting the bindings name, with the logical names as values |
//!
//! A schedule Azure cannot express, or two HTTP functions that would get the same
//! route, fail with a [`DescriptorError`] saying why.

use std::time::Duration;

use nube::Schedule;
use nube::http::Route;
use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};
use serde_json::{Map, Value, json};

use crate::names;

/// The extension bundle's id.
pub const EXTENSION_BUNDLE_ID: &str = "Microsoft.Azure.Functions.ExtensionBundle";

/// The extension bundle's version range (v4: Cosmos DB extension v4 names).
pub const EXTENSION_BUNDLE_VERSION: &str = "[4.*, 5.0.0)";

/// The route prefix the descriptors set (the host's default).
pub const ROUTE_PREFIX: &str = crate::http::DEFAULT_ROUTE_PREFIX;

/// The Cosmos DB container holding the change feed's leases.
pub const LEASE_CONTAINER: &str = "leases";

/// Documents per Cosmos DB trigger invocation (`maxItemsPerInvocation`; unset, a batch
/// is whatever one change-feed page holds). A batch shares one deadline, the
/// function's timeout, and is retried whole, so it is kept as small as the DynamoDB
/// stream batches nube's SAM template asks for. Cosmos DB takes it as a hint: a
/// transactional batch's items still come together.
pub const COSMOS_BATCH_SIZE: u32 = 10;

/// The name of the catch-all parameter of a multi-route function's route.
pub const CATCH_ALL: &str = "{*path}";

/// A descriptor that cannot be rendered; the message says why and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorError(pub String);

impl std::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DescriptorError {}

fn has(manifest: &Manifest, pred: impl Fn(&TriggerManifest) -> bool) -> bool {
    manifest.functions.iter().any(|f| pred(&f.trigger))
}

/// `hh:mm:ss` for `d`, rounded up to whole seconds.
pub fn timespan(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The app's `host.json`; `executable` is the path of the app's binary in the function
/// app folder.
pub fn host_json(manifest: &Manifest, executable: &str) -> Value {
    let mut custom_handler = json!({
        "description": {"defaultExecutablePath": executable}
    });
    if has(manifest, |t| matches!(t, TriggerManifest::Http { .. })) {
        custom_handler["enableForwardingHttpRequest"] = json!(true);
    }
    let mut host = json!({
        "version": "2.0",
        "customHandler": custom_handler,
        "extensions": {"http": {"routePrefix": ROUTE_PREFIX}},
    });
    let needs_bundle = has(manifest, |t| {
        matches!(
            t,
            TriggerManifest::BlobCreated { .. } | TriggerManifest::DocumentCreated { .. }
        )
    });
    if needs_bundle {
        host["extensionBundle"] = json!({
            "id": EXTENSION_BUNDLE_ID,
            "version": EXTENSION_BUNDLE_VERSION,
        });
    }
    if has(manifest, |t| {
        matches!(t, TriggerManifest::BlobCreated { .. })
    }) {
        host["extensions"]["blobs"] =
            json!({"poisonBlobThreshold": manifest.settings.max_attempts});
    }
    let longest = manifest
        .functions
        .iter()
        .map(|f| f.timeout_seconds)
        .fold(manifest.settings.timeout.as_secs_f64(), f64::max);
    host["functionTimeout"] = json!(timespan(Duration::from_secs_f64(longest + 1.0)));
    host
}

/// The route template of an HTTP function's routes (relative to the route prefix).
pub fn http_route(routes: &[Route]) -> String {
    let trimmed = |p: &str| p.trim_matches('/').to_owned();
    match routes {
        [] => CATCH_ALL.to_owned(),
        [only] if !trimmed(&only.path).is_empty() => trimmed(&only.path),
        _ => {
            let split: Vec<Vec<&str>> = routes
                .iter()
                .map(|r| r.path.split('/').filter(|s| !s.is_empty()).collect())
                .collect();
            let mut common: Vec<&str> = Vec::new();
            for (i, segment) in split[0].iter().enumerate() {
                if segment.starts_with('{') || !split.iter().all(|s| s.get(i) == Some(segment)) {
                    break;
                }
                common.push(segment);
            }
            common.push(CATCH_ALL);
            common.join("/")
        }
    }
}

/// The methods an HTTP function takes, lower case; `None` when one route takes any.
pub fn http_methods(routes: &[Route]) -> Option<Vec<String>> {
    if routes.iter().any(|r| r.method.eq_ignore_ascii_case("ANY")) {
        return None;
    }
    let mut methods: Vec<String> = routes
        .iter()
        .map(|r| r.method.to_ascii_lowercase())
        .collect();
    methods.sort();
    methods.dedup();
    Some(methods)
}

fn retry(manifest: &Manifest) -> Option<Value> {
    let retries = manifest.settings.max_attempts.saturating_sub(1);
    (retries > 0).then(|| {
        json!({
            "strategy": "exponentialBackoff",
            "maxRetryCount": retries,
            "minimumInterval": "00:00:01",
            "maximumInterval": "00:15:00",
        })
    })
}

/// The `function.json` of `function`.
pub fn function_json(
    manifest: &Manifest,
    function: &FunctionManifest,
) -> Result<Value, DescriptorError> {
    names::azure_function_name(&function.name).map_err(DescriptorError)?;
    let mut descriptor = Map::new();
    let bindings = match &function.trigger {
        TriggerManifest::Http { routes } => {
            let mut trigger = json!({
                "type": "httpTrigger",
                "direction": "in",
                "name": "req",
                "authLevel": if manifest.settings.anonymous_http { "anonymous" } else { "function" },
                "route": http_route(routes),
            });
            if let Some(methods) = http_methods(routes) {
                trigger["methods"] = json!(methods);
            }
            vec![
                trigger,
                json!({"type": "http", "direction": "out", "name": "res"}),
            ]
        }
        TriggerManifest::Timer { schedule } => {
            let ncrontab = Schedule::parse(schedule)
                .and_then(|s| s.to_azure())
                .map_err(|e| DescriptorError(format!("timer function {:?}: {e}", function.name)))?;
            if let Some(r) = retry(manifest) {
                descriptor.insert("retry".into(), r);
            }
            vec![json!({
                "type": "timerTrigger",
                "direction": "in",
                "name": "timer",
                "schedule": ncrontab,
            })]
        }
        TriggerManifest::BlobCreated { bucket, prefix } => {
            if prefix.contains(['{', '}']) {
                return Err(DescriptorError(format!(
                    "blob function {:?}: the prefix {prefix:?} contains '{{' or '}}', which blob trigger paths read as binding expressions",
                    function.name
                )));
            }
            vec![json!({
                "type": "blobTrigger",
                "direction": "in",
                "name": "blob",
                "path": format!("%{}%/{prefix}{{name}}", names::bucket_setting(bucket)),
                "dataType": "binary",
                "connection": names::STORAGE_CONNECTION,
            })]
        }
        TriggerManifest::DocumentCreated { collection } => {
            if let Some(r) = retry(manifest) {
                descriptor.insert("retry".into(), r);
            }
            vec![json!({
                "type": "cosmosDBTrigger",
                "direction": "in",
                "name": "documents",
                "connection": names::COSMOS_CONNECTION,
                "databaseName": format!("%{}%", names::COSMOS_DATABASE_SETTING),
                "containerName": format!("%{}%", names::collection_setting(collection)),
                "leaseContainerName": LEASE_CONTAINER,
                "leaseContainerPrefix": format!("{}-", function.name),
                "createLeaseContainerIfNotExists": true,
                "maxItemsPerInvocation": COSMOS_BATCH_SIZE,
            })]
        }
    };
    let mut out = Map::new();
    out.insert("bindings".into(), Value::Array(bindings));
    out.extend(descriptor);
    Ok(Value::Object(out))
}

/// The first path segment of a route when it is literal (`/images/{name}` →
/// `images`); `None` for `/` and for a route starting with a parameter.
fn first_literal_segment(path: &str) -> Option<&str> {
    path.split('/')
        .find(|s| !s.is_empty())
        .filter(|s| !s.starts_with('{'))
}

/// An HTTP function's routes, grouped by their first literal path segment, in the
/// order declared. An Azure function has one route template, so an HTTP function
/// whose routes start differently (`/uploads/...` and `/images/...`) becomes one
/// Azure function per group; forwarded requests keep their path, and the app's router
/// serves each of them whichever Azure function received it. A route starting with a
/// parameter makes a single catch-all group.
pub fn http_route_groups(routes: &[Route]) -> Vec<(Option<String>, Vec<Route>)> {
    if routes
        .iter()
        .any(|r| first_literal_segment(&r.path).is_none())
    {
        return vec![(None, routes.to_vec())];
    }
    let mut groups: Vec<(Option<String>, Vec<Route>)> = Vec::new();
    for route in routes {
        let segment = first_literal_segment(&route.path).map(str::to_owned);
        match groups.iter_mut().find(|(s, _)| *s == segment) {
            Some((_, group)) => group.push(route.clone()),
            None => groups.push((segment, vec![route.clone()])),
        }
    }
    groups
}

/// The Azure function names of an HTTP function with these route `paths`: its own name
/// when its routes form one group, else `<name>-<segment>` per group
/// ([`http_route_groups`]).
pub fn split_names(name: &str, paths: &[&str]) -> Vec<String> {
    let routes: Vec<Route> = paths
        .iter()
        .map(|p| Route {
            method: "ANY".into(),
            path: (*p).to_owned(),
        })
        .collect();
    let groups = http_route_groups(&routes);
    if groups.len() <= 1 {
        return vec![name.to_owned()];
    }
    groups
        .iter()
        .map(|(segment, _)| format!("{name}-{}", segment.as_deref().unwrap_or("root")))
        .collect()
}

/// Every function's `function.json`, keyed by the Azure function name (the folder it
/// goes in), in declaration order; an HTTP function whose routes start with different
/// segments gives one per group ([`http_route_groups`]). Two HTTP functions with the
/// same route fail.
pub fn function_jsons(manifest: &Manifest) -> Result<Vec<(String, Value)>, DescriptorError> {
    names::check_invocation_paths(
        manifest.functions.iter().map(|f| {
            (
                f.name.as_str(),
                matches!(f.trigger, TriggerManifest::Http { .. }),
            )
        }),
        ROUTE_PREFIX,
    )
    .map_err(DescriptorError)?;
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut routes: Vec<(String, &str)> = Vec::new();
    for f in &manifest.functions {
        let name = names::azure_function_name(&f.name).map_err(DescriptorError)?;
        let TriggerManifest::Http { routes: declared } = &f.trigger else {
            out.push((name, function_json(manifest, f)?));
            continue;
        };
        let paths: Vec<&str> = declared.iter().map(|r| r.path.as_str()).collect();
        let groups = http_route_groups(declared);
        for ((_, group), azure_name) in groups.into_iter().zip(split_names(&f.name, &paths)) {
            let azure_name = names::azure_function_name(&azure_name).map_err(DescriptorError)?;
            let route = http_route(&group);
            if let Some((_, other)) = routes.iter().find(|(r, _)| r.eq_ignore_ascii_case(&route)) {
                return Err(DescriptorError(format!(
                    "HTTP functions {other:?} and {:?} both get the Azure route {route:?}; give each function its own path prefix",
                    f.name
                )));
            }
            routes.push((route, &f.name));
            let part = FunctionManifest {
                trigger: TriggerManifest::Http { routes: group },
                ..f.clone()
            };
            out.push((azure_name, function_json(manifest, &part)?));
        }
    }
    // Azure function names are folder names, which the host compares without case.
    for (i, (name, _)) in out.iter().enumerate() {
        if out[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(DescriptorError(format!(
                "two functions would go in the Azure function folder {name:?} (an HTTP function's routes are split by their first path segment into <function>-<segment>); rename one of them"
            )));
        }
    }
    Ok(out)
}

/// A `local.settings.json` for `func start`: `FUNCTIONS_WORKER_RUNTIME=Custom`, local
/// storage for non-HTTP triggers, and each resource setting with its logical name.
pub fn local_settings_json(manifest: &Manifest) -> Value {
    let mut values = Map::new();
    values.insert("FUNCTIONS_WORKER_RUNTIME".into(), json!("Custom"));
    let non_http = has(manifest, |t| !matches!(t, TriggerManifest::Http { .. }));
    if non_http || !manifest.buckets.is_empty() {
        values.insert(
            names::STORAGE_CONNECTION.into(),
            json!("UseDevelopmentStorage=true"),
        );
    }
    for bucket in &manifest.buckets {
        values.insert(names::bucket_setting(bucket), json!(bucket));
    }
    if !manifest.collections.is_empty() {
        values.insert(names::COSMOS_CONNECTION.into(), json!(""));
        values.insert(names::COSMOS_DATABASE_SETTING.into(), json!(manifest.app));
        for collection in &manifest.collections {
            values.insert(names::collection_setting(collection), json!(collection));
        }
    }
    json!({"IsEncrypted": false, "Values": values})
}

#[cfg(test)]
mod tests {
    use super::*;
    use nube::http::Routes;
    use nube::{App, BlobCreated, Context, DocumentCreated, TimerTick};

    async fn ok() -> &'static str {
        "ok"
    }

    fn app() -> App {
        App::new("shop")
            .http(
                "api",
                Routes::new()
                    .get("/orders", ok)
                    .post("/orders", ok)
                    .get("/orders/{id}", ok),
            )
            .http("health", Routes::new().get("/health", ok))
            .timer("nightly", "0 2 * * *", |_t: TimerTick, _c: Context| async {
                Ok(())
            })
            .on_blob_created(
                "thumbs",
                "uploads",
                "original/",
                |_b: BlobCreated, _c: Context| async { Ok(()) },
            )
            .on_document_created(
                "on-order",
                "orders",
                |_d: DocumentCreated<Value>, _c: Context| async { Ok(()) },
            )
            .function_timeout("thumbs", Duration::from_secs(90))
    }

    #[test]
    fn http_functions_with_several_first_segments_are_split() {
        let app = App::new("shop").http(
            "images",
            Routes::new()
                .put("/uploads/{name}", ok)
                .get("/images/{name}", ok)
                .get("/images/{name}/thumbnail", ok),
        );
        let functions = function_jsons(&app.manifest()).unwrap();
        let names: Vec<&str> = functions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["images-uploads", "images-images"]);
        assert_eq!(functions[0].1["bindings"][0]["route"], "uploads/{name}");
        assert_eq!(functions[0].1["bindings"][0]["methods"], json!(["put"]));
        assert_eq!(functions[1].1["bindings"][0]["route"], "images/{*path}");
        // The runtime finds the nube function behind either name.
        for name in names {
            assert_eq!(names::nube_function(&app, name).unwrap().name(), "images");
        }
        // A route starting with a parameter keeps the function whole.
        let whole =
            App::new("shop").http("pages", Routes::new().get("/{slug}", ok).get("/about", ok));
        let functions = function_jsons(&whole.manifest()).unwrap();
        assert_eq!(functions.len(), 1);
        assert_eq!(functions[0].0, "pages");
    }

    #[test]
    fn an_event_function_named_like_the_route_prefix_is_refused() {
        let app = App::new("shop")
            .http("pages", Routes::new().get("/{slug}", ok))
            .timer(
                "api",
                "0 2 * * *",
                |_t: nube::TimerTick, _c: Context| async { Ok(()) },
            );
        let e = function_jsons(&app.manifest()).unwrap_err();
        assert!(e.0.contains("\"api\"") && e.0.contains("rename"), "{e:?}");
    }

    #[test]
    fn host_json_follows_the_docs() {
        let host = host_json(&app().manifest(), "shop");
        assert_eq!(host["version"], "2.0");
        assert_eq!(
            host["customHandler"]["description"]["defaultExecutablePath"],
            "shop"
        );
        assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
        assert_eq!(host["extensionBundle"]["id"], EXTENSION_BUNDLE_ID);
        assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
        assert_eq!(host["functionTimeout"], "00:01:31");
        assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
        let http_only = App::new("h")
            .http("api", Routes::new().get("/x", ok))
            .manifest();
        let host = host_json(&http_only, "h");
        assert!(host.get("extensionBundle").is_none(), "{host}");
        let timer_only = App::new("t")
            .timer("t", "rate(5 minutes)", |_t: TimerTick, _c: Context| async {
                Ok(())
            })
            .manifest();
        let host = host_json(&timer_only, "t");
        assert!(
            host["customHandler"]
                .get("enableForwardingHttpRequest")
                .is_none()
        );
    }

    #[test]
    fn function_json_per_trigger() {
        let manifest = app().manifest();
        let all = function_jsons(&manifest).unwrap();
        let get = |name: &str| all.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let api = get("api");
        assert_eq!(api["bindings"][0]["type"], "httpTrigger");
        assert_eq!(api["bindings"][0]["route"], "orders/{*path}");
        assert_eq!(api["bindings"][0]["methods"], json!(["get", "post"]));
        assert_eq!(api["bindings"][0]["authLevel"], "function");
        assert_eq!(
            api["bindings"][1],
            json!({"type": "http", "direction": "out", "name": "res"})
        );
        assert_eq!(get("health")["bindings"][0]["route"], "health");
        let nightly = get("nightly");
        assert_eq!(nightly["bindings"][0]["schedule"], "0 0 2 * * *");
        assert_eq!(nightly["retry"]["maxRetryCount"], 4);
        let thumbs = get("thumbs");
        assert_eq!(
            thumbs["bindings"][0]["path"],
            "%NUBE_BUCKET_UPLOADS%/original/{name}"
        );
        assert_eq!(thumbs["bindings"][0]["connection"], "AzureWebJobsStorage");
        let cosmos = &get("on-order")["bindings"][0];
        assert_eq!(cosmos["type"], "cosmosDBTrigger");
        assert_eq!(cosmos["containerName"], "%NUBE_COLLECTION_ORDERS%");
        assert_eq!(cosmos["databaseName"], "%NUBE_COSMOS_DATABASE%");
        assert_eq!(cosmos["leaseContainerName"], "leases");
        assert_eq!(cosmos["createLeaseContainerIfNotExists"], true);
        assert_eq!(cosmos["maxItemsPerInvocation"], 10);
        let anonymous = app().anonymous_http().manifest();
        let api = function_json(&anonymous, &anonymous.functions[0]).unwrap();
        assert_eq!(api["bindings"][0]["authLevel"], "anonymous");
    }

    #[test]
    fn refusals_say_why() {
        let either = App::new("t")
            .timer("t", "0 0 1 * 1", |_t: TimerTick, _c: Context| async {
                Ok(())
            })
            .manifest();
        let e = function_jsons(&either).unwrap_err();
        assert!(e.0.contains("\"t\"") && e.0.contains("NCRONTAB"), "{e}");
        let clash = App::new("t")
            .http("a", Routes::new().get("/x/1", ok).get("/x/2", ok))
            .http("b", Routes::new().post("/x/3", ok).post("/x/4", ok))
            .manifest();
        let e = function_jsons(&clash).unwrap_err();
        assert!(e.0.contains("x/{*path}"), "{e}");
        let folders = App::new("t")
            .http(
                "f",
                Routes::new().get("/uploads/x", ok).get("/images/y", ok),
            )
            .timer(
                "F-uploads",
                "0 0 * * *",
                |_t: TimerTick, _c: Context| async { Ok(()) },
            )
            .manifest();
        let e = function_jsons(&folders).unwrap_err();
        assert!(e.0.contains("uploads") && e.0.contains("rename"), "{e}");
        let any = [Route {
            method: "ANY".into(),
            path: "/".into(),
        }];
        assert_eq!(http_methods(&any), None);
        assert_eq!(http_route(&any), CATCH_ALL);
    }

    #[test]
    fn local_settings_name_every_setting() {
        let settings = local_settings_json(&app().manifest());
        let values = &settings["Values"];
        assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "Custom");
        assert_eq!(values["NUBE_BUCKET_UPLOADS"], "uploads");
        assert_eq!(values["NUBE_COLLECTION_ORDERS"], "orders");
        assert_eq!(values["NUBE_COSMOS_DATABASE"], "shop");
        assert_eq!(timespan(Duration::from_millis(30_500)), "00:00:31");
    }
}
