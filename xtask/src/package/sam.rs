//! The AWS SAM template for an app, rendered from its [`Manifest`].
//!
//! [`render_sam`] turns the manifest into a template (as JSON, which is valid YAML, so it
//! is written as `template.yaml` and `sam deploy` takes it as it is):
//!
//! | manifest | template |
//! |---|---|
//! | function | `AWS::Serverless::Function` `<Name>Function`: `provided.al2023`, `Handler` = the function's name (nube-aws reads it from `_HANDLER`), the one `bootstrap.zip`, `Timeout` = the manifest's + 1 s (a stream function's: for its batch of 10 records, at most 900 s) |
//! | HTTP routes | `HttpApi` events on one `AWS::Serverless::HttpApi` (`HttpApi`); `ANY` stays `ANY`, `{param}` stays, `{*rest}` becomes `{rest+}`; not `anonymousHttp` → IAM auth |
//! | timer | a `Schedule` event (EventBridge) with [`Schedule::to_aws`]'s `cron(...)`/`rate(...)` |
//! | blob created | an `S3` event, `s3:ObjectCreated:*` with the prefix as key filter |
//! | document created | a `DynamoDB` event on the collection's stream: `INSERT` records only, `TRIM_HORIZON`, partial batch failures, `maxAttempts - 1` retries |
//! | collection | `AWS::DynamoDB::Table` `<Name>Table`: key `id` (S), on demand, stream `NEW_IMAGE` |
//! | bucket | `AWS::S3::Bucket` `<Name>Bucket`, named `<app>-<bucket>-<12 hex of the stack id>` |
//!
//! Every function gets `NUBE_TABLE_<COLLECTION>` and `NUBE_BUCKET_<BUCKET>` (the physical
//! names, as `nube_aws::names` reads them). Its policies are `DynamoDBCrudPolicy` and
//! `S3CrudPolicy` on the tables and buckets it declared it uses
//! (`App::function_collections`, `App::function_buckets`, its trigger's own included),
//! or, when it declared nothing, on all of the app's own, and nothing else. SAM adds
//! stream-read and queue-send rights for the events.
//!
//! Events that fail for good are not dropped silently: stream batches that exhaust
//! their retries, and S3/schedule invocations that exhaust Lambda's asynchronous retries,
//! are recorded in one SQS queue (`DeadLetterQueue`, 14 days).
//!
//! Buckets get a name made from the stack's id rather than `!Ref`: with `!Ref`, the
//! function's policy would need the bucket, the bucket's notification the function's
//! permission, and CloudFormation would refuse the cycle. The stack id is lowercase hex,
//! unlike stack names, so the name is always a valid bucket name and differs per stack.
//! Tables and buckets are kept when the stack is deleted (`DeletionPolicy: Retain`).

use std::collections::{BTreeMap, HashMap};

use nube::Schedule;
use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};
use serde_json::{Map, Value, json};

use super::Arch;

/// Lambda's largest timeout, in seconds.
const MAX_LAMBDA_TIMEOUT: u64 = 900;

/// Records per stream batch: small enough that one slow document does not hold many.
const STREAM_BATCH_SIZE: u32 = 10;

/// The Lambda runtime for custom (`bootstrap`) runtimes on Amazon Linux 2023.
pub const RUNTIME: &str = "provided.al2023";

/// A Python program that runs SAM's own transform (what CloudFormation runs on deploy)
/// on the template at `argv[1]` and writes the plain CloudFormation to `argv[2]`, so that
/// cfn-lint sees the resources SAM adds (roles, permissions, event source mappings):
/// only there do dependency cycles show. Needs `samtranslator` (the SAM CLI's); no
/// network. `CodeUri` becomes an S3 URI first, as `sam deploy` makes it.
pub const TRANSFORM_PY: &str = r#"
import json, sys
from samtranslator.translator.transform import transform
class NoManagedPolicies:
    def load(self):
        return {}
template = json.load(open(sys.argv[1]))
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = "s3://nube-artifacts/bootstrap.zip"
json.dump(transform(template, {}, NoManagedPolicies()), open(sys.argv[2], "w"), indent=1)
"#;

/// The code package `cargo xtask package --target aws` writes beside the template.
pub(crate) const CODE_URI: &str = "bootstrap.zip";

/// What the manifest does not say: how the app is deployed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CPU the bootstrap was built for.
    pub arch: Arch,
    /// The code package, relative to the template (`bootstrap.zip`).
    pub code_uri: String,
    /// Memory of every function, in MB (Lambda: 128–10240; CPU grows with it).
    pub memory_mb: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            arch: Arch::X86_64,
            code_uri: CODE_URI.to_owned(),
            memory_mb: super::DEFAULT_MEMORY_MB,
        }
    }
}

/// `order-events` → `OrderEvents`: a CloudFormation logical id part (letters and
/// digits only).
fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            let first = chars.next().expect("not empty").to_ascii_uppercase();
            std::iter::once(first).chain(chars).collect::<String>()
        })
        .collect()
}

/// Logical ids for one kind of resource, refusing two names that map to the same id.
fn ids<'a>(
    kind: &str,
    suffix: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<&'a str, String>, String> {
    let mut by_id: HashMap<String, &str> = HashMap::new();
    let mut out = BTreeMap::new();
    for name in names {
        let id = format!("{}{suffix}", pascal(name));
        if let Some(other) = by_id.insert(id.clone(), name)
            && other != name
        {
            return Err(format!(
                "{kind}s {other:?} and {name:?} both become the CloudFormation id {id}; rename one of them"
            ));
        }
        out.insert(name, id);
    }
    Ok(out)
}

/// The bucket's physical name: `<app>-<bucket>-<last 12 hex digits of the stack id>`,
/// at most 63 characters, as an `Fn::Sub`.
fn bucket_name(app: &str, bucket: &str) -> Value {
    let mut prefix = format!("{app}-{bucket}");
    // 63 characters at most, 13 of them for "-" and the suffix.
    prefix.truncate(50);
    let prefix = prefix.trim_end_matches('-');
    json!({"Fn::Sub": [
        format!("{prefix}-${{StackSuffix}}"),
        {"StackSuffix": {"Fn::Select": [4, {"Fn::Split": ["-",
            {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]}}
    ]})
}

/// A route path in API Gateway's syntax: `{param}` as is, axum's `{*rest}` as `{rest+}`.
fn api_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix("{*") {
            Some(rest) => format!("{{{}+}}", rest.trim_end_matches('}')),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The Lambda timeout: the manifest's, rounded up, plus one second so that nube's own
/// deadline (a 504, a retryable timeout error, a log line) fires before Lambda's hard
/// stop; at most 900 s. A stream function runs a batch of records in one invocation,
/// each with the function's timeout: it gets room for the whole batch (at most 900 s).
fn lambda_timeout(f: &FunctionManifest) -> Result<u64, String> {
    let secs = f.timeout_seconds.ceil();
    if !secs.is_finite() || secs < 1.0 || secs >= MAX_LAMBDA_TIMEOUT as f64 {
        return Err(format!(
            "function {:?}: a timeout of {} s does not fit AWS Lambda, which allows 1 to {} s \
             (nube adds 1 s for its own deadline to fire first); set a shorter timeout",
            f.name,
            f.timeout_seconds,
            MAX_LAMBDA_TIMEOUT - 1
        ));
    }
    let per_invocation = match f.trigger {
        TriggerManifest::DocumentCreated { .. } => secs as u64 * u64::from(STREAM_BATCH_SIZE),
        _ => secs as u64,
    };
    Ok((per_invocation + 1).min(MAX_LAMBDA_TIMEOUT))
}

/// API Gateway's own limit on waiting for a function (HTTP APIs: 30 s; REST APIs: 29 s
/// unless raised).
const API_GATEWAY_TIMEOUT_SECONDS: f64 = 30.0;

/// What the packager warns about: HTTP functions whose timeout API Gateway cuts short
/// (the client gets its 503 or 504, not nube's, and the function runs on).
pub fn warnings(manifest: &Manifest) -> Vec<String> {
    manifest
        .functions
        .iter()
        .filter(|f| matches!(f.trigger, TriggerManifest::Http { .. }))
        .filter(|f| f.timeout_seconds > API_GATEWAY_TIMEOUT_SECONDS)
        .map(|f| {
            format!(
                "function {:?} has a timeout of {} s, and API Gateway stops waiting after 30 s: \
                 nube answers 504 at {:.1} s, so the rest is never used; set its timeout to \
                 28 s or less, or move the long work to an event function",
                f.name,
                f.timeout_seconds,
                nube_aws::http::API_GATEWAY_WAIT.as_secs_f64()
            )
        })
        .collect()
}

/// Checks that S3 can take the app's notifications: on one bucket, no two functions'
/// prefixes may overlap (one a prefix of the other), or S3 refuses the configuration.
fn check_blob_prefixes(manifest: &Manifest) -> Result<(), String> {
    let blob: Vec<(&str, &str, &str)> = manifest
        .functions
        .iter()
        .filter_map(|f| match &f.trigger {
            TriggerManifest::BlobCreated { bucket, prefix } => {
                Some((f.name.as_str(), bucket.as_str(), prefix.as_str()))
            }
            _ => None,
        })
        .collect();
    for (i, (f1, b1, p1)) in blob.iter().enumerate() {
        for (f2, b2, p2) in &blob[i + 1..] {
            if b1 == b2 && (p1.starts_with(p2) || p2.starts_with(p1)) {
                return Err(format!(
                    "functions {f1:?} (prefix {p1:?}) and {f2:?} (prefix {p2:?}) both fire on objects \
                     created in bucket {b1:?}, and S3 refuses overlapping notifications on one bucket; \
                     give them prefixes where neither begins with the other"
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a function that declares it uses a collection or bucket the app does not
/// have: it would get no policy for it, and AWS would deny what the function expects.
fn check_uses(manifest: &Manifest) -> Result<(), String> {
    for f in &manifest.functions {
        let Some(uses) = &f.uses else { continue };
        let missing = |kind: &str, used: &[String], declared: &[String]| {
            used.iter().find(|u| !declared.contains(u)).map(|u| {
                format!(
                    "function {:?} uses {kind} {u:?}, which the app does not declare",
                    f.name
                )
            })
        };
        if let Some(e) = missing("collection", &uses.collections, &manifest.collections)
            .or_else(|| missing("bucket", &uses.buckets, &manifest.buckets))
        {
            return Err(e);
        }
    }
    Ok(())
}

/// Renders the SAM template for `manifest`.
///
/// Fails, saying what to change, when AWS cannot run the app as declared: a schedule
/// EventBridge cannot express (the [`nube::ScheduleError`]'s message), a timeout
/// beyond Lambda's, overlapping S3 notifications, a trigger on (or a function's use of)
/// an undeclared resource, or two names that map to the same CloudFormation id.
pub fn render_sam(manifest: &Manifest, options: &Options) -> Result<Value, String> {
    let functions = ids(
        "function",
        "Function",
        manifest.functions.iter().map(|f| f.name.as_str()),
    )?;
    let tables = ids(
        "collection",
        "Table",
        manifest.collections.iter().map(String::as_str),
    )?;
    let buckets = ids(
        "bucket",
        "Bucket",
        manifest.buckets.iter().map(String::as_str),
    )?;
    check_blob_prefixes(manifest)?;
    check_uses(manifest)?;

    let mut resources = Map::new();
    let mut outputs = Map::new();
    let mut environment = Map::new();
    // Each resource's policy, by its logical name; a function gets those it may use.
    let mut table_policies = Vec::new();
    let mut bucket_policies = Vec::new();

    for (collection, id) in &tables {
        resources.insert(
            id.clone(),
            json!({
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "BillingMode": "PAY_PER_REQUEST",
                    "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
                    "Tags": [{"Key": "nube:collection", "Value": collection}],
                }
            }),
        );
        environment.insert(
            nube::manifest::env_var("NUBE_TABLE", collection),
            json!({"Ref": id}),
        );
        table_policies.push((
            *collection,
            json!({"DynamoDBCrudPolicy": {"TableName": {"Ref": id}}}),
        ));
        outputs.insert(
            format!("{id}Name"),
            json!({
                "Description": format!("The DynamoDB table of collection {collection}"),
                "Value": {"Ref": id},
            }),
        );
    }

    let mut bucket_names = BTreeMap::new();
    for (bucket, id) in &buckets {
        let name = bucket_name(&manifest.app, bucket);
        if let Some(other) = bucket_names.insert(name.to_string(), *bucket) {
            return Err(format!(
                "buckets {other:?} and {bucket:?} get the same S3 name once shortened to 63 characters; \
                 shorten one of the names"
            ));
        }
        resources.insert(
            id.clone(),
            json!({
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "BucketName": name,
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": true,
                        "BlockPublicPolicy": true,
                        "IgnorePublicAcls": true,
                        "RestrictPublicBuckets": true,
                    },
                    "Tags": [{"Key": "nube:bucket", "Value": bucket}],
                }
            }),
        );
        environment.insert(nube::manifest::env_var("NUBE_BUCKET", bucket), name.clone());
        bucket_policies.push((
            *bucket,
            json!({"S3CrudPolicy": {"BucketName": name.clone()}}),
        ));
        outputs.insert(
            format!("{id}Name"),
            json!({"Description": format!("The S3 bucket of bucket {bucket}"), "Value": name}),
        );
    }

    // Deliveries after the first; DynamoDB event sources take at most 10000.
    let retries = manifest.settings.max_attempts.saturating_sub(1).min(10_000);
    let dead_letters = json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]});
    let mut has_http = false;
    let mut needs_dead_letters = false;

    for f in &manifest.functions {
        let mut events = Map::new();
        let mut properties = Map::new();
        match &f.trigger {
            TriggerManifest::Http { routes } => {
                has_http = true;
                let mut used = HashMap::new();
                for route in routes {
                    let method = route.method.to_ascii_uppercase();
                    let path = match pascal(&route.path) {
                        p if p.is_empty() => "Root".to_owned(),
                        p => p,
                    };
                    let base = format!("{}{path}", pascal(&method.to_ascii_lowercase()));
                    let n = used.entry(base.clone()).or_insert(0u32);
                    *n += 1;
                    let name = if *n == 1 { base } else { format!("{base}{n}") };
                    events.insert(
                        name,
                        json!({
                            "Type": "HttpApi",
                            "Properties": {
                                "ApiId": {"Ref": "HttpApi"},
                                "Method": method,
                                "Path": api_path(&route.path),
                            }
                        }),
                    );
                }
            }
            TriggerManifest::Timer { schedule } => {
                let aws = Schedule::parse(schedule)
                    .and_then(|s| s.to_aws())
                    .map_err(|e| format!("timer function {:?}: {e}", f.name))?;
                events.insert(
                    "Schedule".to_owned(),
                    json!({
                        "Type": "Schedule",
                        "Properties": {
                            "Schedule": aws,
                            "Description": format!("nube timer {} ({schedule}, UTC)", f.name),
                            "Enabled": true,
                        }
                    }),
                );
                needs_dead_letters = true;
            }
            TriggerManifest::BlobCreated { bucket, prefix } => {
                let id = buckets.get(bucket.as_str()).ok_or_else(|| {
                    format!(
                        "function {:?} fires on bucket {bucket:?}, which the app does not declare",
                        f.name
                    )
                })?;
                let mut s3 = json!({
                    "Bucket": {"Ref": id},
                    "Events": "s3:ObjectCreated:*",
                });
                if !prefix.is_empty() {
                    s3["Filter"] =
                        json!({"S3Key": {"Rules": [{"Name": "prefix", "Value": prefix}]}});
                }
                events.insert(
                    "ObjectCreated".to_owned(),
                    json!({"Type": "S3", "Properties": s3}),
                );
                needs_dead_letters = true;
            }
            TriggerManifest::DocumentCreated { collection } => {
                let id = tables.get(collection.as_str()).ok_or_else(|| {
                    format!(
                        "function {:?} fires on collection {collection:?}, which the app does not declare",
                        f.name
                    )
                })?;
                events.insert(
                    "DocumentCreated".to_owned(),
                    json!({
                        "Type": "DynamoDB",
                        "Properties": {
                            "Stream": {"Fn::GetAtt": [id, "StreamArn"]},
                            "StartingPosition": "TRIM_HORIZON",
                            "BatchSize": STREAM_BATCH_SIZE,
                            "MaximumRetryAttempts": retries,
                            "BisectBatchOnFunctionError": true,
                            "FunctionResponseTypes": ["ReportBatchItemFailures"],
                            "FilterCriteria": {"Filters": [
                                {"Pattern": r#"{"eventName":["INSERT"]}"#}
                            ]},
                            "DestinationConfig": {"OnFailure": {
                                "Type": "SQS",
                                "Destination": dead_letters.clone(),
                            }},
                        }
                    }),
                );
                needs_dead_letters = true;
            }
        }
        if matches!(
            f.trigger,
            TriggerManifest::Timer { .. } | TriggerManifest::BlobCreated { .. }
        ) {
            // Lambda invokes these asynchronously: retry as the manifest says (Lambda
            // allows 2 at most), then record the event in the dead letters.
            properties.insert(
                "EventInvokeConfig".to_owned(),
                json!({
                    "MaximumRetryAttempts": retries.min(2),
                    "DestinationConfig": {"OnFailure": {
                        "Type": "SQS",
                        "Destination": dead_letters.clone(),
                    }},
                }),
            );
        }
        let kind = match &f.trigger {
            TriggerManifest::Http { .. } => "HTTP",
            TriggerManifest::Timer { .. } => "timer",
            TriggerManifest::BlobCreated { .. } => "blob created",
            TriggerManifest::DocumentCreated { .. } => "document created",
        };
        properties.extend([
            (
                "Description".to_owned(),
                json!(format!("nube function {} ({kind})", f.name)),
            ),
            ("Runtime".to_owned(), json!(RUNTIME)),
            ("Handler".to_owned(), json!(f.name)),
            ("CodeUri".to_owned(), json!(options.code_uri)),
            ("Architectures".to_owned(), json!([options.arch.lambda()])),
            ("MemorySize".to_owned(), json!(options.memory_mb)),
            ("Timeout".to_owned(), json!(lambda_timeout(f)?)),
            ("Events".to_owned(), Value::Object(events)),
        ]);
        if !environment.is_empty() {
            properties.insert(
                "Environment".to_owned(),
                json!({"Variables": environment.clone()}),
            );
        }
        let policies: Vec<&Value> = table_policies
            .iter()
            .filter(|(collection, _)| f.may_use_collection(collection))
            .chain(
                bucket_policies
                    .iter()
                    .filter(|(bucket, _)| f.may_use_bucket(bucket)),
            )
            .map(|(_, policy)| policy)
            .collect();
        if !policies.is_empty() {
            properties.insert("Policies".to_owned(), json!(policies));
        }
        resources.insert(
            functions[f.name.as_str()].clone(),
            json!({"Type": "AWS::Serverless::Function", "Properties": properties}),
        );
    }

    if has_http {
        let mut api = json!({
            "Description": format!("The HTTP routes of {}", manifest.app),
        });
        if !manifest.settings.anonymous_http {
            // The app asks for callers to authenticate: AWS's way is SigV4 (IAM).
            api["Auth"] = json!({"EnableIamAuthorizer": true, "DefaultAuthorizer": "AWS_IAM"});
        }
        resources.insert(
            "HttpApi".to_owned(),
            json!({"Type": "AWS::Serverless::HttpApi", "Properties": api}),
        );
        outputs.insert(
            "HttpApiUrl".to_owned(),
            json!({
                "Description": "The app's HTTP endpoint",
                "Value": {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"},
            }),
        );
    }
    if needs_dead_letters {
        resources.insert(
            "DeadLetterQueue".to_owned(),
            json!({
                "Type": "AWS::SQS::Queue",
                // Failure records, not data: they go with the stack.
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Properties": {"MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": true},
            }),
        );
        outputs.insert(
            "DeadLetterQueueUrl".to_owned(),
            json!({
                "Description": "Events whose function kept failing (what failed, not the event itself for streams)",
                "Value": {"Ref": "DeadLetterQueue"},
            }),
        );
    }

    Ok(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": format!(
            "{}: {} nube functions (nube {}), packaged by cargo xtask package --target aws",
            manifest.app,
            manifest.functions.len(),
            manifest.nube_version
        ),
        "Resources": resources,
        "Outputs": outputs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nube::app::Settings;
    use nube::http::Route;
    use nube::manifest::{FORMAT, FunctionManifest};
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    fn function(name: &str, trigger: TriggerManifest) -> FunctionManifest {
        FunctionManifest {
            name: name.to_owned(),
            trigger,
            timeout_seconds: 30.0,
            uses: None,
        }
    }

    fn route(method: &str, path: &str) -> Route {
        Route {
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            nube_version: "0.1.0".to_owned(),
            app: "shop".to_owned(),
            functions: vec![
                function(
                    "api",
                    TriggerManifest::Http {
                        routes: vec![
                            route("GET", "/items/{id}"),
                            route("ANY", "/files/{*path}"),
                            route("POST", "/"),
                        ],
                    },
                ),
                function(
                    "nightly",
                    TriggerManifest::Timer {
                        schedule: "0 9 * * 1-5".to_owned(),
                    },
                ),
                function(
                    "on-upload",
                    TriggerManifest::BlobCreated {
                        bucket: "user-uploads".to_owned(),
                        prefix: "in/".to_owned(),
                    },
                ),
                FunctionManifest {
                    timeout_seconds: 12.5,
                    ..function(
                        "on-order",
                        TriggerManifest::DocumentCreated {
                            collection: "order-events".to_owned(),
                        },
                    )
                },
            ],
            collections: vec!["order-events".to_owned(), "items".to_owned()],
            buckets: vec!["user-uploads".to_owned()],
            settings: Settings {
                anonymous_http: true,
                ..Settings::default()
            },
        }
    }

    fn render(m: &Manifest) -> Value {
        render_sam(m, &Options::default()).unwrap()
    }

    #[test]
    fn the_template_is_sam() {
        let t = render(&manifest());
        assert_eq!(t["AWSTemplateFormatVersion"], "2010-09-09");
        assert_eq!(t["Transform"], "AWS::Serverless-2016-10-31");
    }

    #[test]
    fn one_function_per_nube_function_on_the_one_bootstrap() {
        let t = render(&manifest());
        for (id, handler) in [
            ("ApiFunction", "api"),
            ("NightlyFunction", "nightly"),
            ("OnUploadFunction", "on-upload"),
            ("OnOrderFunction", "on-order"),
        ] {
            let f = &t["Resources"][id];
            assert_eq!(f["Type"], "AWS::Serverless::Function", "{id}");
            let p = &f["Properties"];
            assert_eq!(p["Handler"], handler);
            assert_eq!(p["Runtime"], "provided.al2023");
            assert_eq!(p["CodeUri"], "bootstrap.zip");
            assert_eq!(p["Architectures"], json!(["x86_64"]));
            assert_eq!(p["MemorySize"], 256);
        }
        assert_eq!(t["Resources"]["ApiFunction"]["Properties"]["Timeout"], 31);
        // A stream function: 12.5 s rounds up to 13, for each of the batch's 10
        // records, plus the second nube's deadline gets first.
        assert_eq!(
            t["Resources"]["OnOrderFunction"]["Properties"]["Timeout"],
            131
        );
    }

    #[test]
    fn http_timeouts_past_api_gateway_s_are_warned_about() {
        let mut m = manifest();
        assert!(warnings(&m).is_empty(), "30 s is API Gateway's own limit");
        m.functions[0].timeout_seconds = 45.0;
        let warned = warnings(&m);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("45 s") && warned[0].contains("28.5 s"),
            "{warned:?}"
        );
    }

    #[test]
    fn arm64_is_said_the_way_lambda_spells_it() {
        let options = Options {
            arch: Arch::Arm64,
            ..Options::default()
        };
        let t = render_sam(&manifest(), &options).unwrap();
        assert_eq!(
            t["Resources"]["ApiFunction"]["Properties"]["Architectures"],
            json!(["arm64"])
        );
    }

    #[test]
    fn routes_become_http_api_events_on_one_api() {
        let t = render(&manifest());
        let events = &t["Resources"]["ApiFunction"]["Properties"]["Events"];
        assert_eq!(
            events["GetItemsId"],
            json!({"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/items/{id}"}})
        );
        assert_eq!(events["AnyFilesPath"]["Properties"]["Method"], "ANY");
        assert_eq!(
            events["AnyFilesPath"]["Properties"]["Path"],
            "/files/{path+}"
        );
        assert_eq!(events["PostRoot"]["Properties"]["Path"], "/");
        assert_eq!(
            t["Resources"]["HttpApi"]["Type"],
            "AWS::Serverless::HttpApi"
        );
        assert!(
            t["Resources"]["HttpApi"]["Properties"]
                .get("Auth")
                .is_none()
        );
        assert_eq!(
            t["Outputs"]["HttpApiUrl"]["Value"]["Fn::Sub"],
            "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
        );
    }

    #[test]
    fn routes_that_need_a_caller_identity_use_iam() {
        let mut m = manifest();
        m.settings.anonymous_http = false;
        let t = render(&m);
        assert_eq!(
            t["Resources"]["HttpApi"]["Properties"]["Auth"],
            json!({"EnableIamAuthorizer": true, "DefaultAuthorizer": "AWS_IAM"})
        );
    }

    #[test]
    fn no_http_functions_no_api() {
        let mut m = manifest();
        m.functions.remove(0);
        let t = render(&m);
        assert!(t["Resources"].get("HttpApi").is_none());
        assert!(t["Outputs"].get("HttpApiUrl").is_none());
    }

    #[test]
    fn timers_use_eventbridge_syntax() {
        let t = render(&manifest());
        let p = &t["Resources"]["NightlyFunction"]["Properties"];
        assert_eq!(p["Events"]["Schedule"]["Type"], "Schedule");
        assert_eq!(
            p["Events"]["Schedule"]["Properties"]["Schedule"],
            "cron(0 9 ? * 2-6 *)"
        );
        assert_eq!(p["EventInvokeConfig"]["MaximumRetryAttempts"], 2);
    }

    #[test]
    fn rates_are_rates() {
        let mut m = manifest();
        m.functions[1].trigger = TriggerManifest::Timer {
            schedule: "every 15m".to_owned(),
        };
        let t = render(&m);
        assert_eq!(
            t["Resources"]["NightlyFunction"]["Properties"]["Events"]["Schedule"]["Properties"]["Schedule"],
            "rate(15 minutes)"
        );
    }

    #[test]
    fn a_schedule_aws_cannot_express_fails_with_its_reason() {
        let mut m = manifest();
        m.functions[1].trigger = TriggerManifest::Timer {
            schedule: "0 0 1 * 1".to_owned(),
        };
        let err = render_sam(&m, &Options::default()).unwrap_err();
        let reason = Schedule::parse("0 0 1 * 1")
            .unwrap()
            .to_aws()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("timer function \"nightly\": "), "{err}");
        assert!(err.ends_with(&reason), "{err}");
    }

    #[test]
    fn blob_functions_get_an_s3_event_with_the_prefix() {
        let t = render(&manifest());
        let p = &t["Resources"]["OnUploadFunction"]["Properties"];
        assert_eq!(
            p["Events"]["ObjectCreated"],
            json!({"Type": "S3", "Properties": {
                "Bucket": {"Ref": "UserUploadsBucket"},
                "Events": "s3:ObjectCreated:*",
                "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "in/"}]}},
            }})
        );
        assert_eq!(
            p["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"],
            json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
        );
    }

    #[test]
    fn an_empty_prefix_has_no_filter() {
        let mut m = manifest();
        m.functions[2].trigger = TriggerManifest::BlobCreated {
            bucket: "user-uploads".to_owned(),
            prefix: String::new(),
        };
        let t = render(&m);
        let s3 = &t["Resources"]["OnUploadFunction"]["Properties"]["Events"]["ObjectCreated"]["Properties"];
        assert!(s3.get("Filter").is_none());
    }

    #[test]
    fn overlapping_prefixes_on_one_bucket_are_refused() {
        let mut m = manifest();
        m.functions.push(function(
            "on-nested",
            TriggerManifest::BlobCreated {
                bucket: "user-uploads".to_owned(),
                prefix: "in/deep/".to_owned(),
            },
        ));
        let err = render_sam(&m, &Options::default()).unwrap_err();
        assert!(err.contains("overlapping"), "{err}");
        m.functions.last_mut().unwrap().trigger = TriggerManifest::BlobCreated {
            bucket: "user-uploads".to_owned(),
            prefix: "out/".to_owned(),
        };
        render(&m);
    }

    #[test]
    fn document_functions_read_the_tables_stream() {
        let t = render(&manifest());
        let e = &t["Resources"]["OnOrderFunction"]["Properties"]["Events"]["DocumentCreated"];
        assert_eq!(e["Type"], "DynamoDB");
        let p = &e["Properties"];
        assert_eq!(
            p["Stream"],
            json!({"Fn::GetAtt": ["OrderEventsTable", "StreamArn"]})
        );
        assert_eq!(p["StartingPosition"], "TRIM_HORIZON");
        assert_eq!(
            p["FunctionResponseTypes"],
            json!(["ReportBatchItemFailures"])
        );
        assert_eq!(p["BatchSize"], 10);
        // maxAttempts 5 = the first delivery and 4 retries.
        assert_eq!(p["MaximumRetryAttempts"], 4);
        assert_eq!(
            p["FilterCriteria"]["Filters"][0]["Pattern"],
            r#"{"eventName":["INSERT"]}"#
        );
    }

    #[test]
    fn one_table_per_collection() {
        let t = render(&manifest());
        for id in ["OrderEventsTable", "ItemsTable"] {
            let table = &t["Resources"][id];
            assert_eq!(table["Type"], "AWS::DynamoDB::Table");
            let p = &table["Properties"];
            assert_eq!(
                p["KeySchema"],
                json!([{"AttributeName": "id", "KeyType": "HASH"}])
            );
            assert_eq!(
                p["AttributeDefinitions"],
                json!([{"AttributeName": "id", "AttributeType": "S"}])
            );
            assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
            assert_eq!(p["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
            assert_eq!(table["DeletionPolicy"], "Retain");
        }
    }

    #[test]
    fn buckets_have_a_name_without_a_reference_to_themselves() {
        let t = render(&manifest());
        let bucket = &t["Resources"]["UserUploadsBucket"];
        assert_eq!(bucket["Type"], "AWS::S3::Bucket");
        let name = &bucket["Properties"]["BucketName"];
        assert_eq!(name["Fn::Sub"][0], "shop-user-uploads-${StackSuffix}");
        let env = &t["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"];
        assert_eq!(&env["NUBE_BUCKET_USER_UPLOADS"], name);
        assert!(
            !serde_json::to_string(&t["Resources"]["ApiFunction"])
                .unwrap()
                .contains("UserUploadsBucket"),
            "a function referring to the bucket makes a cycle with the bucket's notification"
        );
    }

    #[test]
    fn long_bucket_names_fit_s3() {
        let name = bucket_name(&"a".repeat(32), &"b".repeat(63));
        let pattern = name["Fn::Sub"][0].as_str().unwrap();
        let physical = pattern.replace("${StackSuffix}", "50e2416294e0");
        assert_eq!(physical.len(), 63);
        assert!(nube::blob::validate_bucket_name(&physical).is_ok());
    }

    #[test]
    fn functions_that_declared_nothing_reach_the_apps_resources_and_only_those() {
        let t = render(&manifest());
        for id in [
            "ApiFunction",
            "NightlyFunction",
            "OnUploadFunction",
            "OnOrderFunction",
        ] {
            let p = &t["Resources"][id]["Properties"];
            assert_eq!(
                p["Environment"]["Variables"]["NUBE_TABLE_ORDER_EVENTS"],
                json!({"Ref": "OrderEventsTable"})
            );
            assert_eq!(
                p["Environment"]["Variables"]["NUBE_TABLE_ITEMS"],
                json!({"Ref": "ItemsTable"})
            );
            let policies = p["Policies"].as_array().unwrap();
            assert_eq!(policies.len(), 3, "{policies:?}");
            assert!(policies.contains(
                &json!({"DynamoDBCrudPolicy": {"TableName": {"Ref": "OrderEventsTable"}}})
            ));
            assert!(
                policies
                    .contains(&json!({"DynamoDBCrudPolicy": {"TableName": {"Ref": "ItemsTable"}}}))
            );
            let s3 = policies.iter().find_map(|p| p.get("S3CrudPolicy")).unwrap();
            assert_eq!(
                s3["BucketName"],
                t["Resources"]["UserUploadsBucket"]["Properties"]["BucketName"]
            );
        }
    }

    #[test]
    fn a_function_that_declared_its_uses_gets_policies_on_those_only() {
        let mut m = manifest();
        m.functions[0].uses = Some(nube::manifest::UsesManifest {
            collections: vec!["items".to_owned()],
            buckets: vec![],
        });
        m.functions[3].uses = Some(nube::manifest::UsesManifest {
            collections: vec!["order-events".to_owned()],
            buckets: vec!["user-uploads".to_owned()],
        });
        let t = render(&m);
        let policies = |id: &str| t["Resources"][id]["Properties"]["Policies"].clone();
        assert_eq!(
            policies("ApiFunction"),
            json!([{"DynamoDBCrudPolicy": {"TableName": {"Ref": "ItemsTable"}}}])
        );
        let on_order = policies("OnOrderFunction");
        assert_eq!(on_order.as_array().unwrap().len(), 2, "{on_order}");
        assert_eq!(
            on_order[0],
            json!({"DynamoDBCrudPolicy": {"TableName": {"Ref": "OrderEventsTable"}}})
        );
        assert!(on_order[1].get("S3CrudPolicy").is_some(), "{on_order}");
        // Declaring nothing still reaches all of the app's.
        assert_eq!(policies("NightlyFunction").as_array().unwrap().len(), 3);
        // A function that uses nothing gets no policy.
        m.functions[0].uses = Some(nube::manifest::UsesManifest {
            collections: vec![],
            buckets: vec![],
        });
        let t = render(&m);
        assert!(t["Resources"]["ApiFunction"]["Properties"]["Policies"].is_null());
    }

    #[test]
    fn names_that_collide_as_ids_are_refused() {
        let mut m = manifest();
        m.collections.push("items-2".to_owned());
        m.collections.push("items2".to_owned());
        let err = render_sam(&m, &Options::default()).unwrap_err();
        assert!(err.contains("Items2Table"), "{err}");
    }

    #[test]
    fn triggers_on_undeclared_resources_are_refused() {
        let mut m = manifest();
        m.collections.retain(|c| c != "order-events");
        let err = render_sam(&m, &Options::default()).unwrap_err();
        assert!(err.contains("does not declare"), "{err}");
    }

    #[test]
    fn uses_of_undeclared_resources_are_refused_and_a_trigger_s_own_is_implied() {
        let mut m = manifest();
        m.functions[2].uses = Some(nube::manifest::UsesManifest {
            collections: vec!["ledger".to_owned()],
            buckets: vec![],
        });
        let err = render_sam(&m, &Options::default()).unwrap_err();
        assert!(
            err.contains(
                "\"on-upload\" uses collection \"ledger\", which the app does not declare"
            ),
            "{err}"
        );
        // A hand-written `uses` without the trigger's bucket still reaches it.
        m.functions[2].uses = serde_json::from_value(json!({"collections": []})).unwrap();
        let t = render(&m);
        let policies = &t["Resources"]["OnUploadFunction"]["Properties"]["Policies"];
        assert_eq!(policies.as_array().unwrap().len(), 1, "{policies}");
        assert!(policies[0].get("S3CrudPolicy").is_some(), "{policies}");
    }

    #[test]
    fn timeouts_beyond_lambdas_are_refused() {
        let mut m = manifest();
        m.functions[0].timeout_seconds = 900.0;
        let err = render_sam(&m, &Options::default()).unwrap_err();
        assert!(err.contains("1 to 899 s"), "{err}");
    }

    /// A tool installed in `.tools/venv`; the message says how to get it when it is not.
    fn venv_tool(name: &str) -> PathBuf {
        let path = crate::tools::venv_program(&crate::tools::venv_dir(), name);
        assert!(
            path.exists(),
            "{name} is not installed ({} is missing): run `cargo xtask tools`, which installs \
             the pinned Python tools into .tools/venv (`cargo xtask test` does it by itself)",
            path.display()
        );
        path
    }

    /// Runs a validator: whether it passed, and what it said.
    fn run(program: &Path, args: &[&OsStr]) -> (bool, String) {
        let output = Command::new(program)
            .args(args)
            // sam: offline, no prompts, no telemetry, no credentials needed.
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("SAM_CLI_TELEMETRY", "0")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
        let said = format!(
            "`{} {}` ({}):\n{}{}",
            program.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), said)
    }

    fn must_pass(program: &Path, args: &[&OsStr]) {
        let (ok, said) = run(program, args);
        assert!(ok, "failed: {said}");
    }

    /// Writes `template` as `<name>.yaml` in `dir`, and SAM's transform of it as
    /// `<name>.cfn.json`; returns both paths.
    fn write_template(dir: &Path, name: &str, template: &Value) -> (PathBuf, PathBuf) {
        let sam = dir.join(format!("{name}.yaml"));
        std::fs::write(&sam, serde_json::to_string_pretty(template).unwrap()).unwrap();
        let cfn = dir.join(format!("{name}.cfn.json"));
        must_pass(
            &venv_tool("python"),
            &[
                "-c".as_ref(),
                TRANSFORM_PY.as_ref(),
                sam.as_os_str(),
                cfn.as_os_str(),
            ],
        );
        (sam, cfn)
    }

    fn cfn_lint(paths: &[&Path]) -> (bool, String) {
        // Informational findings too (such as stateful resources without a deletion policy).
        let mut args: Vec<&OsStr> = vec!["--include-checks".as_ref(), "I".as_ref(), "--".as_ref()];
        args.extend(paths.iter().map(|p| p.as_os_str()));
        run(&venv_tool("cfn-lint"), &args)
    }

    /// The delivery app's template, and a variant of it (arm64, IAM auth, a rate), pass
    /// cfn-lint (before and after SAM's transform), `sam validate` and
    /// `sam validate --lint`, offline.
    #[test]
    fn the_delivery_apps_template_passes_cfn_lint_and_sam_validate() {
        let sam = venv_tool("sam");
        let delivery = delivery_app::app().manifest();
        let mut variant = delivery.clone();
        variant.settings.anonymous_http = false;
        for f in &mut variant.functions {
            if let TriggerManifest::Timer { schedule } = &mut f.trigger {
                *schedule = "every 15m".to_owned();
            }
        }
        let arm = Options {
            arch: Arch::Arm64,
            ..Options::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (name, manifest, options) in [
            ("delivery", &delivery, Options::default()),
            ("variant", &variant, arm),
        ] {
            paths.push(write_template(
                dir.path(),
                name,
                &render_sam(manifest, &options).unwrap(),
            ));
        }
        let all: Vec<&Path> = paths.iter().flat_map(|(s, c)| [&**s, &**c]).collect();
        let (ok, said) = cfn_lint(&all);
        assert!(ok, "failed: {said}");
        for (path, _) in &paths {
            must_pass(
                &sam,
                &[
                    "validate".as_ref(),
                    "--template-file".as_ref(),
                    path.as_os_str(),
                ],
            );
            must_pass(
                &sam,
                &[
                    "validate".as_ref(),
                    "--lint".as_ref(),
                    "--template-file".as_ref(),
                    path.as_os_str(),
                ],
            );
        }
    }

    /// The check above would see the known cycle: a function whose policy names its
    /// trigger bucket by `Ref` (bucket → notification → permission → function → role →
    /// bucket). That is why buckets are named from the stack id.
    #[test]
    fn the_lint_sees_the_bucket_notification_cycle() {
        let mut template = render(&manifest());
        template["Resources"]["OnUploadFunction"]["Properties"]["Policies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"S3CrudPolicy": {"BucketName": {"Ref": "UserUploadsBucket"}}}));
        let dir = tempfile::tempdir().unwrap();
        let (_, cfn) = write_template(dir.path(), "cycle", &template);
        let (ok, said) = cfn_lint(&[&cfn]);
        assert!(!ok && said.contains("E3004"), "{said}");
    }

    #[test]
    fn failed_events_land_in_the_dead_letter_queue() {
        let t = render(&manifest());
        assert_eq!(t["Resources"]["DeadLetterQueue"]["Type"], "AWS::SQS::Queue");
        let mut m = manifest();
        m.functions.truncate(1);
        let t = render(&m);
        assert!(t["Resources"].get("DeadLetterQueue").is_none());
    }
}
