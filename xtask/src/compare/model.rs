//! What each function of an app becomes on every target, read out of the descriptors
//! the packager writes: the SAM template (`package::sam`), the function app's
//! `function.json` files and settings (`nube_azure::descriptors`), and the Cloud Run
//! service, Eventarc triggers and Scheduler jobs (`nube_gcp::descriptors`). Nothing here
//! restates a rule of a renderer: each cell is picked out of what the renderer wrote, so
//! the comparison cannot drift from the packages. The local column describes what
//! `nube_local` does with the same manifest.
//!
//! Cells are lines of text in which `` `code` `` marks the provider's own syntax; the
//! renderers turn it into code spans (Markdown, HTML) or drop the backticks (terminal).

use std::path::{Path, PathBuf};

use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};
use serde_json::Value;

use super::Target;
use crate::package::{Arch, azure, gcp, sam};

/// Where and how the app is deployed: what the manifest does not say (the packager's
/// defaults).
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The Google Cloud project (`--project`).
    pub project: String,
    /// The Google Cloud region (`--region`).
    pub region: String,
    /// Lambda memory, in MB.
    pub memory_mb: u32,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            project: crate::package::DEFAULT_PROJECT.to_owned(),
            region: crate::package::DEFAULT_REGION.to_owned(),
            memory_mb: crate::package::DEFAULT_MEMORY_MB,
        }
    }
}

/// One row of a table: an aspect and one cell (lines) per target.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row shows (`becomes`, `trigger`, ...).
    pub aspect: &'static str,
    /// One cell per target, in the comparison's target order.
    pub cells: Vec<Vec<String>>,
}

impl Row {
    /// The row of `aspect`, with no cells yet.
    pub fn new(aspect: &'static str) -> Self {
        Row {
            aspect,
            cells: Vec::new(),
        }
    }
}

/// One function and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionView {
    /// The nube function's name.
    pub name: String,
    /// Its trigger as declared (`HTTP: GET /todos, ...`).
    pub declared: String,
    /// Its rows: becomes, trigger, permissions, environment.
    pub rows: Vec<Row>,
}

/// The whole comparison of one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The app's name.
    pub app: String,
    /// The columns.
    pub targets: Vec<Target>,
    /// Every function selected, in declaration order.
    pub functions: Vec<FunctionView>,
    /// What the whole app is per target: artifact, size, environment, and the
    /// measurements when asked.
    pub app_rows: Vec<Row>,
}

/// How the artifact row is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizes {
    /// The size of each artifact found under the target directory, or how to build it.
    FromDisk,
    /// No sizes: the output must not depend on what is built (the guide's tables).
    Omitted,
}

/// `` `text` ``: a code span in a cell.
fn code(text: &str) -> String {
    format!("`{text}`")
}

/// The routes of an HTTP function as `METHOD /path`.
fn routes(f: &FunctionManifest) -> Vec<String> {
    match &f.trigger {
        TriggerManifest::Http { routes } => routes
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect(),
        _ => Vec::new(),
    }
}

/// The trigger as the app declares it, for headings.
pub fn declared(f: &FunctionManifest) -> String {
    match &f.trigger {
        TriggerManifest::Http { .. } => format!("HTTP: {}", routes(f).join(", ")),
        TriggerManifest::Timer { schedule } => format!("timer: {schedule} (UTC)"),
        TriggerManifest::BlobCreated { bucket, prefix } => {
            format!("blob created in bucket {bucket}, keys starting {prefix:?}")
        }
        TriggerManifest::DocumentCreated { collection } => {
            format!("document created in collection {collection}")
        }
    }
}

/// The rendered descriptors of every cloud, for one manifest.
struct Rendered {
    sam: Result<Value, String>,
    azure: Result<azure::Descriptors, String>,
    gcp_service: Result<Value, String>,
    gcp_triggers: Result<Value, String>,
    gcp_deploy: Result<String, String>,
    gcp_options: nube_gcp::descriptors::Options,
}

impl Rendered {
    fn new(manifest: &Manifest, deployment: &Deployment) -> Self {
        let sam_options = sam::Options {
            arch: Arch::X86_64,
            memory_mb: deployment.memory_mb,
            ..sam::Options::default()
        };
        let gcp_options = gcp::options(&manifest.app, &deployment.project, &deployment.region);
        Rendered {
            sam: sam::render_sam(manifest, &sam_options),
            azure: azure::descriptors(manifest, &manifest.app),
            gcp_service: nube_gcp::descriptors::service(manifest, &gcp_options),
            gcp_triggers: nube_gcp::descriptors::triggers(manifest, &gcp_options),
            gcp_deploy: nube_gcp::descriptors::render_deploy_script(manifest, &gcp_options),
            gcp_options,
        }
    }
}

/// Builds the comparison of `manifest` for `targets`, keeping the functions `keep`
/// accepts; `target_dir` is cargo's, where the artifacts are looked for, and `bin` the
/// app's binary.
pub fn compare(
    manifest: &Manifest,
    targets: &[Target],
    keep: impl Fn(&FunctionManifest) -> bool,
    deployment: &Deployment,
    sizes: Sizes,
    target_dir: &Path,
    bin: &str,
) -> Comparison {
    let rendered = Rendered::new(manifest, deployment);
    let functions = manifest
        .functions
        .iter()
        .filter(|f| keep(f))
        .map(|f| {
            let cells: Vec<Cells> = targets
                .iter()
                .map(|t| match t {
                    Target::Local => local(manifest, f),
                    Target::Aws => aws(&rendered, f),
                    Target::Azure => azure_cells(manifest, &rendered, f),
                    Target::Gcp => gcp_cells(manifest, &rendered, f),
                })
                .collect();
            FunctionView {
                name: f.name.clone(),
                declared: declared(f),
                rows: rows(cells),
            }
        })
        .collect();
    let app_rows = app_rows(manifest, &rendered, targets, sizes, target_dir, bin);
    Comparison {
        app: manifest.app.clone(),
        targets: targets.to_vec(),
        functions,
        app_rows,
    }
}

/// One target's cells for one function.
struct Cells {
    becomes: Vec<String>,
    trigger: Vec<String>,
    permissions: Vec<String>,
    environment: Vec<String>,
}

impl Cells {
    /// The same message in every row: the target cannot run the app as declared.
    fn failed(why: &str) -> Self {
        let line = vec![format!("cannot be packaged: {why}")];
        Cells {
            becomes: line.clone(),
            trigger: line.clone(),
            permissions: line.clone(),
            environment: line,
        }
    }
}

fn rows(cells: Vec<Cells>) -> Vec<Row> {
    let mut out = vec![
        Row::new("becomes"),
        Row::new("trigger"),
        Row::new("permissions"),
        Row::new("environment"),
    ];
    for c in cells {
        out[0].cells.push(c.becomes);
        out[1].cells.push(c.trigger);
        out[2].cells.push(c.permissions);
        out[3].cells.push(c.environment);
    }
    out
}

// ---- local ------------------------------------------------------------------------

fn local(manifest: &Manifest, f: &FunctionManifest) -> Cells {
    let retry = format!(
        "retried with backoff ({} attempts), then a dead letter (`GET /_nube/dead-letters`)",
        manifest.settings.max_attempts
    );
    let fire = format!("fire now: `POST /_nube/functions/{}`", f.name);
    let (becomes, trigger, environment) = match &f.trigger {
        TriggerManifest::Http { .. } => (
            vec!["routes of the one local process (axum)".to_owned()],
            routes(f)
                .iter()
                .map(|r| code(r))
                .chain(["on `http://127.0.0.1:$PORT`".to_owned()])
                .collect(),
            vec!["`PORT` (default 3000)".to_owned()],
        ),
        TriggerManifest::Timer { schedule } => (
            vec![
                "a timer loop in the process; each tick goes through the SQLite outbox".to_owned(),
            ],
            vec![
                format!("{} (UTC, nube's syntax)", code(schedule)),
                "a tick missed while down: delivered once, `pastDue: true`".to_owned(),
                fire,
                retry,
            ],
            vec!["`NUBE_DATA_DIR` (outbox, timer state)".to_owned()],
        ),
        TriggerManifest::BlobCreated { bucket, prefix } => (
            vec!["an outbox subscriber: a write to the bucket queues the event".to_owned()],
            vec![
                format!(
                    "{}",
                    code(&format!("$NUBE_DATA_DIR/blobs/{bucket}/{prefix}*"))
                ),
                "intent row before the write, event after it (crash-safe)".to_owned(),
                retry,
            ],
            vec!["`NUBE_DATA_DIR` (blobs, outbox)".to_owned()],
        ),
        TriggerManifest::DocumentCreated { collection } => (
            vec![
                "an outbox subscriber: the create queues the event in its own transaction"
                    .to_owned(),
            ],
            vec![
                format!(
                    "collection {} in {}",
                    code(collection),
                    code("$NUBE_DATA_DIR/nube.db")
                ),
                retry,
            ],
            vec!["`NUBE_DATA_DIR` (`nube.db`, outbox)".to_owned()],
        ),
    };
    let mut environment = environment;
    if !matches!(f.trigger, TriggerManifest::Http { .. }) {
        environment.push("`NUBE_RETRY_BASE_MS` (first retry delay, default 500)".to_owned());
    }
    Cells {
        becomes,
        trigger,
        permissions: vec![
            "none: one process, its files under `$NUBE_DATA_DIR` (default `.nube`)".to_owned(),
        ],
        environment,
    }
}

// ---- AWS --------------------------------------------------------------------------

/// A CloudFormation value as text: `!Ref X`, `!GetAtt X.Y`, the template of an
/// `Fn::Sub`, or the JSON.
fn cfn(value: &Value) -> String {
    if let Some(s) = value.as_str() {
        return s.to_owned();
    }
    if let Some(r) = value.get("Ref").and_then(Value::as_str) {
        return format!("!Ref {r}");
    }
    if let Some([a, b]) = value
        .get("Fn::GetAtt")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return format!(
            "!GetAtt {}.{}",
            a.as_str().unwrap_or("?"),
            b.as_str().unwrap_or("?")
        );
    }
    match value.get("Fn::Sub") {
        Some(Value::String(s)) => return s.clone(),
        Some(Value::Array(parts)) => {
            if let Some(s) = parts.first().and_then(Value::as_str) {
                return s.to_owned();
            }
        }
        _ => {}
    }
    value.to_string()
}

/// The SAM resource of function `name` (the one whose `Handler` is it): its logical
/// id and properties.
fn sam_function<'a>(template: &'a Value, name: &str) -> Option<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()?
        .iter()
        .find_map(|(id, r)| {
            (r["Type"] == "AWS::Serverless::Function" && r["Properties"]["Handler"] == name)
                .then(|| (id.as_str(), &r["Properties"]))
        })
}

fn aws(rendered: &Rendered, f: &FunctionManifest) -> Cells {
    let template = match &rendered.sam {
        Ok(t) => t,
        Err(e) => return Cells::failed(e),
    };
    let Some((id, props)) = sam_function(template, &f.name) else {
        return Cells::failed("the template has no function for it");
    };
    let events = props["Events"].as_object().cloned().unwrap_or_default();
    let kinds: Vec<&str> = {
        let mut k: Vec<&str> = events.values().filter_map(|e| e["Type"].as_str()).collect();
        k.dedup();
        k
    };
    let mut becomes = vec![
        format!(
            "Lambda {} ({}, {} MB, {} s)",
            code(id),
            props["Runtime"].as_str().unwrap_or("?"),
            props["MemorySize"],
            props["Timeout"]
        ),
        format!(
            "`Handler: {}` on the one `{}`",
            props["Handler"].as_str().unwrap_or("?"),
            props["CodeUri"].as_str().unwrap_or("?")
        ),
    ];
    becomes.push(format!(
        "event source: {}",
        kinds
            .iter()
            .map(|k| match *k {
                "HttpApi" => "API Gateway HTTP API".to_owned(),
                "Schedule" => "EventBridge schedule".to_owned(),
                "S3" => "S3 notification".to_owned(),
                "DynamoDB" => "DynamoDB stream mapping".to_owned(),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut trigger = Vec::new();
    let mut permissions = Vec::new();
    for event in events.values() {
        let p = &event["Properties"];
        match event["Type"].as_str() {
            Some("HttpApi") => trigger.push(code(&format!(
                "{} {}",
                p["Method"].as_str().unwrap_or("?"),
                p["Path"].as_str().unwrap_or("?")
            ))),
            Some("Schedule") => {
                trigger.push(format!("`Schedule: {}`", cfn(&p["Schedule"])));
                permissions.push("EventBridge may invoke it (SAM adds the permission)".to_owned());
            }
            Some("S3") => {
                trigger.push(format!(
                    "`{}` on {}",
                    cfn(&p["Events"]),
                    code(&cfn(&p["Bucket"]))
                ));
                if let Some(rules) = p.pointer("/Filter/S3Key/Rules").and_then(Value::as_array) {
                    for r in rules {
                        trigger.push(format!(
                            "key filter `{}: {}`",
                            r["Name"].as_str().unwrap_or("?"),
                            r["Value"].as_str().unwrap_or("?")
                        ));
                    }
                }
                permissions.push("S3 may invoke it (SAM adds the permission)".to_owned());
            }
            Some("DynamoDB") => {
                trigger.push(format!("stream {}", code(&cfn(&p["Stream"]))));
                if let Some(filters) = p
                    .pointer("/FilterCriteria/Filters")
                    .and_then(Value::as_array)
                {
                    for filter in filters {
                        trigger.push(format!("filter `{}`", cfn(&filter["Pattern"])));
                    }
                }
                trigger.push(format!(
                    "`BatchSize: {}`, `StartingPosition: {}`, `MaximumRetryAttempts: {}`",
                    p["BatchSize"],
                    p["StartingPosition"].as_str().unwrap_or("?"),
                    p["MaximumRetryAttempts"]
                ));
                if let Some(types) = p["FunctionResponseTypes"].as_array() {
                    let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                    trigger.push(format!("`FunctionResponseTypes: {}`", types.join(", ")));
                }
                if let Some(d) = p.pointer("/DestinationConfig/OnFailure/Destination") {
                    trigger.push(format!("on failure: SQS {}", code(&cfn(d))));
                }
                permissions.push("read the stream (SAM adds it)".to_owned());
            }
            _ => trigger.push(format!("`{}` event", event["Type"])),
        }
    }
    if let Some(config) = props.get("EventInvokeConfig") {
        trigger.push(format!(
            "async invoke: `MaximumRetryAttempts: {}`, on failure SQS {}",
            config["MaximumRetryAttempts"],
            code(&cfn(config
                .pointer("/DestinationConfig/OnFailure/Destination")
                .unwrap_or(&Value::Null)))
        ));
        permissions.push("send to the dead-letter queue (SAM adds it)".to_owned());
    }
    if kinds.contains(&"HttpApi") {
        let auth = template
            .pointer("/Resources/HttpApi/Properties/Auth/DefaultAuthorizer")
            .and_then(Value::as_str);
        permissions.insert(
            0,
            match auth {
                Some(a) => format!("callers: `{a}` (signed requests)"),
                None => "callers: anyone (no authorizer on `HttpApi`)".to_owned(),
            },
        );
    }
    // One line per policy template, with every resource it is given.
    let mut policies: Vec<(&str, Vec<String>)> = Vec::new();
    for policy in props["Policies"].as_array().into_iter().flatten() {
        if let Some((name, args)) = policy.as_object().and_then(|o| o.iter().next()) {
            let target = args
                .as_object()
                .and_then(|a| a.values().next())
                .map(|v| code(cfn(v).trim_start_matches("!Ref ")))
                .unwrap_or_default();
            match policies.iter_mut().find(|(n, _)| n == name) {
                Some((_, targets)) => targets.push(target),
                None => policies.push((name, vec![target])),
            }
        }
    }
    for (name, targets) in policies {
        permissions.push(format!("`{name}` on {}", targets.join(", ")));
    }

    let mut environment = vec![format!(
        "`_HANDLER={}`, `AWS_LAMBDA_RUNTIME_API` (set by Lambda)",
        props["Handler"].as_str().unwrap_or("?")
    )];
    for (name, value) in props
        .pointer("/Environment/Variables")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        environment.push(code(&format!("{name}={}", cfn(value))));
    }
    Cells {
        becomes,
        trigger,
        permissions,
        environment,
    }
}

// ---- Azure ------------------------------------------------------------------------

/// The Azure functions of nube function `f`: those whose folder is its name, or
/// `<name>-<segment>` when its routes were split ([`nube_azure::descriptors::split_names`]).
fn azure_functions<'a>(
    descriptors: &'a azure::Descriptors,
    f: &FunctionManifest,
) -> Vec<&'a (String, Value)> {
    let paths = match &f.trigger {
        TriggerManifest::Http { routes } => routes.iter().map(|r| r.path.as_str()).collect(),
        _ => Vec::new(),
    };
    let names = nube_azure::descriptors::split_names(&f.name, &paths);
    descriptors
        .functions
        .iter()
        .filter(|(n, _)| {
            names
                .iter()
                .any(|want| nube_azure::names::azure_function_name(want).as_deref() == Ok(n))
        })
        .collect()
}

/// `%SETTING%` names in a binding's strings, and its `connection`.
fn settings_named(binding: &Value, out: &mut Vec<String>) {
    if let Some(c) = binding["connection"].as_str() {
        out.push(c.to_owned());
    }
    for value in binding.as_object().into_iter().flatten().map(|(_, v)| v) {
        if let Some(s) = value.as_str() {
            let mut parts = s.split('%');
            parts.next();
            while let (Some(name), Some(_)) = (parts.next(), parts.next()) {
                if !name.is_empty() {
                    out.push(name.to_owned());
                }
            }
        }
    }
}

fn azure_cells(manifest: &Manifest, rendered: &Rendered, f: &FunctionManifest) -> Cells {
    let descriptors = match &rendered.azure {
        Ok(d) => d,
        Err(e) => return Cells::failed(e),
    };
    let functions = azure_functions(descriptors, f);
    if functions.is_empty() {
        return Cells::failed("no function.json for it");
    }
    let prefix = descriptors.host["extensions"]["http"]["routePrefix"]
        .as_str()
        .unwrap_or("api");
    let mut becomes = Vec::new();
    let mut trigger = Vec::new();
    let mut permissions = Vec::new();
    let mut settings = Vec::new();
    for (name, descriptor) in &functions {
        let bindings = descriptor["bindings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let kinds: Vec<String> = bindings
            .iter()
            .map(|b| {
                format!(
                    "{} {}",
                    b["type"].as_str().unwrap_or("?"),
                    b["direction"].as_str().unwrap_or("?")
                )
            })
            .collect();
        becomes.push(format!(
            "function {} (`{name}/function.json`): {}",
            code(name),
            kinds.join(" + ")
        ));
        for b in &bindings {
            match b["type"].as_str() {
                Some("httpTrigger") => {
                    let methods = b["methods"]
                        .as_array()
                        .map(|m| {
                            m.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_else(|| "any".to_owned());
                    trigger.push(format!(
                        "{}: `route: {}`, `methods: [{methods}]` → `/{prefix}/{}`",
                        code(name),
                        b["route"].as_str().unwrap_or("?"),
                        b["route"].as_str().unwrap_or("?")
                    ));
                    permissions.push(format!(
                        "{}: `authLevel: {}`",
                        code(name),
                        b["authLevel"].as_str().unwrap_or("?")
                    ));
                }
                Some("timerTrigger") => trigger.push(format!(
                    "`schedule: {}` (NCRONTAB, seconds first, UTC)",
                    b["schedule"].as_str().unwrap_or("?")
                )),
                Some("blobTrigger") => trigger.push(format!(
                    "`path: {}`, `dataType: {}`",
                    b["path"].as_str().unwrap_or("?"),
                    b["dataType"].as_str().unwrap_or("?")
                )),
                Some("cosmosDBTrigger") => {
                    trigger.push(format!(
                        "`databaseName: {}`, `containerName: {}`",
                        b["databaseName"].as_str().unwrap_or("?"),
                        b["containerName"].as_str().unwrap_or("?")
                    ));
                    trigger.push(format!(
                        "leases: `{}` (prefix `{}`)",
                        b["leaseContainerName"].as_str().unwrap_or("?"),
                        b["leaseContainerPrefix"].as_str().unwrap_or("")
                    ));
                    if let Some(n) = b["maxItemsPerInvocation"].as_u64() {
                        trigger.push(format!("`maxItemsPerInvocation: {n}`"));
                    }
                }
                _ => {}
            }
            if let Some(c) = b["connection"].as_str() {
                permissions.push(format!(
                    "the account in setting {} ({})",
                    code(c),
                    if b["type"] == "cosmosDBTrigger" {
                        "Cosmos DB: reads the change feed, writes leases"
                    } else {
                        "Storage: reads the blob"
                    }
                ));
            }
            settings_named(b, &mut settings);
        }
        if let Some(r) = descriptor.get("retry") {
            trigger.push(format!(
                "`retry: {}, maxRetryCount {}`",
                r["strategy"].as_str().unwrap_or("?"),
                r["maxRetryCount"]
            ));
        }
    }
    if matches!(f.trigger, TriggerManifest::Timer { .. }) {
        permissions.push(
            "the host's storage (`AzureWebJobsStorage`) holds the schedule's lock".to_owned(),
        );
    }
    let mut environment = vec!["`FUNCTIONS_CUSTOMHANDLER_PORT` (set by the host)".to_owned()];
    settings.sort();
    settings.dedup();
    let values = &descriptors.settings["Values"];
    for s in settings {
        environment.push(match values.get(&s).and_then(Value::as_str) {
            Some(v) if !v.is_empty() && s != nube_azure::names::STORAGE_CONNECTION => {
                code(&format!("{s}={v}"))
            }
            _ => code(&s),
        });
    }
    if manifest.collections.is_empty() && manifest.buckets.is_empty() {
        permissions.push("no stores".to_owned());
    }
    Cells {
        becomes,
        trigger,
        permissions,
        environment,
    }
}

// ---- Google Cloud -----------------------------------------------------------------

/// The variables the Cloud Run service's container is given: `(name, value)`.
fn gcp_env(service: &Value) -> Vec<(String, String)> {
    service["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("?").to_owned(),
                e["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn gcp_cells(manifest: &Manifest, rendered: &Rendered, f: &FunctionManifest) -> Cells {
    let (service, triggers, deploy) = match (
        &rendered.gcp_service,
        &rendered.gcp_triggers,
        &rendered.gcp_deploy,
    ) {
        (Ok(s), Ok(t), Ok(d)) => (s, t, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Cells::failed(e),
    };
    // An event function's service: the app's own, or its private events service.
    let http = matches!(f.trigger, TriggerManifest::Http { .. });
    let events_service = nube_gcp::descriptors::events_service_name(manifest);
    let service_name = if http {
        service["metadata"]["name"].as_str().unwrap_or("?")
    } else {
        events_service.as_str()
    };
    let container = &service["spec"]["template"]["spec"]["containers"][0];
    let port = &container["ports"][0]["containerPort"];
    let path = format!("/{}", f.name);
    let env = gcp_env(service);
    let env_line = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(n, v)| code(&format!("{n}={v}")))
    };
    let account = rendered
        .gcp_options
        .service_account
        .clone()
        .unwrap_or_else(|| "the default compute service account".to_owned());
    let binding = format!("gcloud run services add-iam-policy-binding {service_name} ");
    let invoker_lines: Vec<String> = deploy
        .lines()
        .filter(|l| l.starts_with(&binding))
        // The account events are delivered with is no HTTP function's caller.
        .filter(|l| !(http && l.contains(nube_gcp::descriptors::INVOKER)))
        .filter_map(|l| {
            let member = l.split("--member=").nth(1)?.split_whitespace().next()?;
            let role = l.split("--role=").nth(1)?.split_whitespace().next()?;
            Some(format!("`{member}` has `{role}`"))
        })
        .collect();
    let mut environment = vec!["`PORT`, `K_SERVICE`, `K_REVISION` (set by Cloud Run)".to_owned()];
    let mut permissions = Vec::new();
    let (becomes, trigger) = match &f.trigger {
        TriggerManifest::Http { .. } => {
            permissions.push(if invoker_lines.is_empty() {
                "callers need `roles/run.invoker` (IAM)".to_owned()
            } else {
                format!("callers: {}", invoker_lines.join("; "))
            });
            (
                vec![format!(
                    "routes of Cloud Run service {} (one container, port {port})",
                    code(service_name)
                )],
                routes(f)
                    .iter()
                    .map(|r| code(r))
                    .chain(["on the service URL".to_owned()])
                    .collect(),
            )
        }
        _ => {
            let eventarc = triggers["eventarcTriggers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| {
                    t.pointer("/destination/cloudRun/path")
                        .and_then(Value::as_str)
                        == Some(&path)
                });
            let job = triggers["schedulerJobs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|j| {
                    j.pointer("/httpTarget/uri")
                        .and_then(Value::as_str)
                        .is_some_and(|u| u.ends_with(&path))
                });
            let short = |name: &Value| {
                name.as_str()
                    .and_then(|n| n.rsplit('/').next())
                    .unwrap_or("?")
                    .to_owned()
            };
            if let Some(t) = eventarc {
                let mut trigger: Vec<String> = t["eventFilters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|filter| {
                        let op = filter["operator"]
                            .as_str()
                            .map(|o| format!(" ({o})"))
                            .unwrap_or_default();
                        format!(
                            "`{}={}`{op}",
                            filter["attribute"].as_str().unwrap_or("?"),
                            filter["value"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                if let Some(ct) = t["eventDataContentType"].as_str() {
                    trigger.push(format!("`eventDataContentType: {ct}`"));
                }
                trigger.push(format!("delivered to `POST {path}`"));
                if let TriggerManifest::BlobCreated { prefix, .. } = &f.trigger
                    && !prefix.is_empty()
                {
                    trigger.push(format!(
                        "no prefix filter in Eventarc: keys outside `{prefix}` are acknowledged unrun"
                    ));
                }
                permissions.push(format!(
                    "Eventarc calls the service as {account} (`roles/run.invoker`)"
                ));
                if let TriggerManifest::BlobCreated { bucket, .. } = &f.trigger {
                    permissions.push(
                        "the Cloud Storage service agent needs `roles/pubsub.publisher`".to_owned(),
                    );
                    environment.extend(env_line(&nube_gcp::names::bucket_env_var(bucket)));
                } else {
                    environment.extend(env_line("GOOGLE_CLOUD_PROJECT"));
                    if let TriggerManifest::DocumentCreated { collection } = &f.trigger {
                        environment.push(format!(
                            "{} (optional; default {})",
                            code(&nube_gcp::names::collection_env_var(collection)),
                            code(collection)
                        ));
                    }
                }
                (
                    vec![
                        format!("a path of service {}", code(service_name)),
                        format!("+ Eventarc trigger {}", code(&short(&t["name"]))),
                    ],
                    trigger,
                )
            } else if let Some(j) = job {
                permissions.push(format!(
                    "Cloud Scheduler calls with an OIDC token of {account} (`roles/run.invoker`)"
                ));
                (
                    vec![
                        format!("a path of service {}", code(service_name)),
                        format!("+ Cloud Scheduler job {}", code(&short(&j["name"]))),
                    ],
                    vec![
                        format!(
                            "`schedule: {}`, `timeZone: {}` (unix cron)",
                            j["schedule"].as_str().unwrap_or("?"),
                            j["timeZone"].as_str().unwrap_or("?")
                        ),
                        format!(
                            "`{} {}`, `attemptDeadline: {}`",
                            j.pointer("/httpTarget/httpMethod")
                                .and_then(Value::as_str)
                                .unwrap_or("?"),
                            j.pointer("/httpTarget/uri")
                                .and_then(Value::as_str)
                                .unwrap_or("?"),
                            j["attemptDeadline"].as_str().unwrap_or("?")
                        ),
                    ],
                )
            } else {
                return Cells::failed("no trigger or job for it");
            }
        }
    };
    if !manifest.collections.is_empty() || !manifest.buckets.is_empty() {
        permissions.push(format!(
            "the service runs as {account}: grant it Firestore and Storage roles"
        ));
    }
    Cells {
        becomes,
        trigger,
        permissions,
        environment,
    }
}

// ---- the whole app ----------------------------------------------------------------

/// What `cargo xtask package --target <target>` writes as the artifact of `app` (whose
/// binary is `bin`), relative to cargo's target directory; local: the release binary.
pub fn artifact(target: Target, app: &str, bin: &str) -> PathBuf {
    match target {
        Target::Local => Path::new("release").join(bin),
        cloud => crate::package::artifact(Path::new(""), cloud.name(), app, bin),
    }
}

/// How to build the artifact of `target`.
pub fn build_command(target: Target, app: &str) -> String {
    match target {
        Target::Local => format!("cargo build --release -p {app}"),
        cloud => format!(
            "cargo xtask package --target {}{}",
            cloud.name(),
            if app == super::DEFAULT_APP {
                String::new()
            } else {
                format!(" --app {app}")
            }
        ),
    }
}

fn mib(bytes: u64) -> String {
    format!(
        "{:.1} MiB ({bytes} bytes)",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

fn app_rows(
    manifest: &Manifest,
    rendered: &Rendered,
    targets: &[Target],
    sizes: Sizes,
    target_dir: &Path,
    bin: &str,
) -> Vec<Row> {
    let app = &manifest.app;
    let mut artifact_row = Row::new("artifact");
    let mut size_row = Row::new("size");
    let mut env_row = Row::new("environment");
    for &target in targets {
        let path = artifact(target, app, bin);
        artifact_row.cells.push(vec![
            format!("`target/{}`", path.display()),
            match target {
                Target::Local => "the app with its default features (SQLite inside)".to_owned(),
                Target::Aws => "one `bootstrap` for every function (`aws` feature)".to_owned(),
                Target::Azure => {
                    "host.json, a folder per function, the executable (`azure` feature)".to_owned()
                }
                Target::Gcp => {
                    "static binary, the whole image on distroless (`gcp` feature)".to_owned()
                }
            },
            format!("built by `{}`", build_command(target, app)),
        ]);
        size_row.cells.push(match sizes {
            Sizes::Omitted => vec![format!(
                "not in this guide: run `cargo xtask compare --app {app}` after building"
            )],
            Sizes::FromDisk => match std::fs::metadata(target_dir.join(&path)) {
                Ok(m) => vec![mib(m.len())],
                Err(_) => vec![format!("not built: run `{}`", build_command(target, app))],
            },
        });
        env_row
            .cells
            .push(app_environment(target, manifest, rendered));
    }
    vec![artifact_row, size_row, env_row]
}

/// Every variable the app reads on `target`.
fn app_environment(target: Target, manifest: &Manifest, rendered: &Rendered) -> Vec<String> {
    match target {
        Target::Local => vec![
            "`PORT` (default 3000)".to_owned(),
            "`NUBE_DATA_DIR` (default `.nube`)".to_owned(),
            "`NUBE_RETRY_BASE_MS` (default 500)".to_owned(),
            "`NUBE_LOG_FORMAT` (`json` for JSON lines), `RUST_LOG`".to_owned(),
        ],
        Target::Aws => {
            let mut out = vec![
                "`AWS_LAMBDA_RUNTIME_API`, `_HANDLER`, `AWS_LAMBDA_LOG_LEVEL` (set by Lambda)"
                    .to_owned(),
            ];
            if let Ok(t) = &rendered.sam {
                let mut names: Vec<&str> = t["Resources"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, r)| r.pointer("/Properties/Environment/Variables"))
                    .filter_map(Value::as_object)
                    .flat_map(|v| v.keys().map(String::as_str))
                    .collect();
                names.sort();
                names.dedup();
                out.extend(names.into_iter().map(code));
            }
            out.push("`NUBE_TABLE_PREFIX` (optional)".to_owned());
            out
        }
        Target::Azure => {
            let mut out = vec!["`FUNCTIONS_CUSTOMHANDLER_PORT` (set by the host)".to_owned()];
            if let Ok(d) = &rendered.azure {
                out.extend(
                    d.settings["Values"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| code(k)),
                );
            }
            out
        }
        Target::Gcp => {
            let mut out = vec!["`PORT`, `K_SERVICE`, `K_REVISION` (set by Cloud Run)".to_owned()];
            if let Ok(s) = &rendered.gcp_service {
                let events = nube_gcp::descriptors::events_service_name(manifest);
                out.extend(gcp_env(s).into_iter().map(|(name, value)| {
                    let set = code(&format!("{name}={value}"));
                    if name == "NUBE_SERVE" {
                        // The split's two services differ in this variable only.
                        format!("{set} (`{name}=events` on `{events}`)")
                    } else {
                        set
                    }
                }));
            }
            out.push(
                "`FUNCTION_TARGET`, `NUBE_COLLECTION_*`, `NUBE_FIRESTORE_DATABASE` (optional)"
                    .to_owned(),
            );
            out
        }
    }
}
