//! Packaging descriptors rendered from an app's [`Manifest`] (pure functions: no
//! network, no `gcloud`): the whole app as one Cloud Run service, its event triggers
//! and timers wired to the service's `POST /{function}` paths ([`crate::server`]).
//!
//! | manifest | rendered |
//! |---|---|
//! | the app | [`render_service`]: a Knative `serving.knative.dev/v1` `Service` (`service.yaml`, for `gcloud run services replace`): one container, port 8080, `timeoutSeconds` = the longest function timeout + 1 s, `GOOGLE_CLOUD_PROJECT` and `NUBE_BUCKET_*` in its environment |
//! | blob created | an Eventarc trigger: `type=google.cloud.storage.object.v1.finalized`, `bucket=<physical bucket>`, to `/{function}` (Eventarc has no prefix filter: the server acknowledges keys outside the prefix without running the function) |
//! | document created | an Eventarc trigger: `type=google.cloud.firestore.document.v1.created`, `database=<database>`, path pattern `document=<collection>/{id}`, event data `application/protobuf`, to `/{function}` |
//! | timer | a Cloud Scheduler HTTP job: `POST <service URL>/{function}` with an OIDC token, [`Schedule::to_unix_cron`] in `Etc/UTC` |
//! | bucket | a Cloud Storage bucket `<project>-<app>-<bucket>` |
//!
//! Triggers and jobs come both as a `deploy.sh` of `gcloud` commands
//! ([`render_deploy_script`]) and as YAML in the shape of the Eventarc and Cloud
//! Scheduler REST resources ([`render_triggers_yaml`]; the service URL, known only
//! after the first deploy, is `${SERVICE_URL}` there). [`render_dockerfile`] is the
//! image: the static binary on distroless, as user 65532. Cloud Run (fully managed)
//! ignores a Kubernetes `securityContext`, so running as non-root is the image's
//! `USER`, not a field of `service.yaml`.

use nube::Schedule;
use nube::manifest::{Manifest, TriggerManifest};
use serde_json::{Map, Value, json};

/// The port the container listens on (nube-gcp's default `PORT`).
pub const CONTAINER_PORT: u16 = crate::server::DEFAULT_PORT;

/// Cloud Run's longest request timeout, in seconds.
pub const MAX_CLOUD_RUN_TIMEOUT: u64 = 3600;

/// The user the image runs as (distroless's `nonroot`).
pub const NON_ROOT_UID: u32 = 65532;

/// What the manifest does not say: where and how the app is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The Google Cloud project id.
    pub project: String,
    /// The region of the service, triggers and jobs (`europe-west1`).
    pub region: String,
    /// The container image (`europe-west1-docker.pkg.dev/<project>/nube/<app>:<tag>`).
    pub image: String,
    /// The service account the service runs as, and Eventarc and Cloud Scheduler
    /// call it with (it gets `roles/run.invoker`); the default compute account when
    /// `None`.
    pub service_account: Option<String>,
    /// The Firestore database of the document triggers (`(default)`).
    pub firestore_database: String,
    /// Memory of the container (`512Mi`).
    pub memory: String,
    /// CPUs of the container (`1`).
    pub cpu: String,
    /// Most instances the service scales to.
    pub max_instances: u32,
}

impl Options {
    /// Options for `project`, `region` and `image`, with the defaults for the rest.
    pub fn new(
        project: impl Into<String>,
        region: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        Self {
            project: project.into(),
            region: region.into(),
            image: image.into(),
            service_account: None,
            firestore_database: "(default)".to_owned(),
            memory: "512Mi".to_owned(),
            cpu: "1".to_owned(),
            max_instances: 100,
        }
    }
}

/// The Cloud Storage bucket of the app's bucket `bucket`: `<project>-<app>-<bucket>`
/// (bucket names are global), or why it cannot be one (over 63 characters).
pub fn bucket_name(project: &str, app: &str, bucket: &str) -> Result<String, String> {
    let name = format!("{project}-{app}-{bucket}");
    if name.len() > 63 {
        return Err(format!(
            "the Cloud Storage bucket name {name:?} for bucket {bucket:?} is longer than 63 characters; use a shorter app or bucket name"
        ));
    }
    Ok(name)
}

/// The name of the Eventarc trigger or Cloud Scheduler job of `function`:
/// `<app>-<function>`, or why it cannot be one (Eventarc allows 63 characters).
pub fn trigger_name(app: &str, function: &str) -> Result<String, String> {
    let name = format!("{app}-{function}");
    if name.len() > 63 {
        return Err(format!(
            "the trigger name {name:?} is longer than the 63 characters Eventarc allows; use a shorter app or function name"
        ));
    }
    Ok(name)
}

fn service_timeout(manifest: &Manifest) -> Result<u64, String> {
    let longest = manifest
        .functions
        .iter()
        .map(|f| f.timeout_seconds)
        .fold(manifest.settings.timeout.as_secs_f64(), f64::max);
    let seconds = longest.ceil() as u64 + 1;
    if seconds > MAX_CLOUD_RUN_TIMEOUT {
        return Err(format!(
            "a function's timeout ({longest} s) is longer than Cloud Run's {MAX_CLOUD_RUN_TIMEOUT} s request timeout allows"
        ));
    }
    Ok(seconds)
}

/// The Knative `Service` of the app, as a JSON value (see [`render_service`]).
pub fn service(manifest: &Manifest, options: &Options) -> Result<Value, String> {
    let mut env = vec![json!({"name": "GOOGLE_CLOUD_PROJECT", "value": options.project})];
    for bucket in &manifest.buckets {
        env.push(json!({
            "name": crate::names::bucket_env_var(bucket),
            "value": bucket_name(&options.project, &manifest.app, bucket)?,
        }));
    }
    let mut spec = Map::new();
    spec.insert("containerConcurrency".into(), json!(80));
    spec.insert("timeoutSeconds".into(), json!(service_timeout(manifest)?));
    if let Some(sa) = &options.service_account {
        spec.insert("serviceAccountName".into(), json!(sa));
    }
    spec.insert(
        "containers".into(),
        json!([{
            "image": options.image,
            "ports": [{"name": "http1", "containerPort": CONTAINER_PORT}],
            "env": env,
            "resources": {"limits": {"cpu": options.cpu, "memory": options.memory}},
        }]),
    );
    Ok(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": manifest.app,
            "labels": {"cloud.googleapis.com/location": options.region},
            "annotations": {"run.googleapis.com/ingress": "all"},
        },
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        "autoscaling.knative.dev/maxScale": options.max_instances.to_string(),
                    },
                },
                "spec": spec,
            },
        },
    }))
}

/// `service.yaml`: the app as one Cloud Run service (the table in the module docs).
pub fn render_service(manifest: &Manifest, options: &Options) -> Result<String, String> {
    Ok(to_yaml(&service(manifest, options)?))
}

/// One event trigger or timer, as the descriptors see it.
#[derive(Debug, Clone, PartialEq)]
enum Wiring {
    Eventarc {
        name: String,
        function: String,
        filters: Vec<(String, String)>,
        path_pattern: Option<(String, String)>,
        content_type: Option<&'static str>,
    },
    Scheduler {
        name: String,
        function: String,
        cron: String,
        deadline_seconds: u64,
    },
}

fn wiring(manifest: &Manifest, options: &Options) -> Result<Vec<Wiring>, String> {
    let mut out = Vec::new();
    for f in &manifest.functions {
        let name = || trigger_name(&manifest.app, &f.name);
        match &f.trigger {
            TriggerManifest::Http { .. } => {}
            TriggerManifest::BlobCreated { bucket, .. } => {
                if !manifest.buckets.contains(bucket) {
                    return Err(format!(
                        "function {:?} triggers on bucket {bucket:?}, which the app does not declare",
                        f.name
                    ));
                }
                out.push(Wiring::Eventarc {
                    name: name()?,
                    function: f.name.clone(),
                    filters: vec![
                        ("type".into(), crate::storage::FINALIZED.into()),
                        (
                            "bucket".into(),
                            bucket_name(&options.project, &manifest.app, bucket)?,
                        ),
                    ],
                    path_pattern: None,
                    content_type: None,
                });
            }
            TriggerManifest::DocumentCreated { collection } => out.push(Wiring::Eventarc {
                name: name()?,
                function: f.name.clone(),
                filters: vec![
                    ("type".into(), crate::firestore::CREATED.into()),
                    ("database".into(), options.firestore_database.clone()),
                ],
                path_pattern: Some(("document".into(), format!("{collection}/{{id}}"))),
                content_type: Some(crate::firestore::PROTOBUF_CONTENT_TYPE),
            }),
            TriggerManifest::Timer { schedule } => {
                let cron = Schedule::parse(schedule)
                    .and_then(|s| s.to_unix_cron())
                    .map_err(|e| format!("timer {:?}: {e}", f.name))?;
                out.push(Wiring::Scheduler {
                    name: name()?,
                    function: f.name.clone(),
                    cron,
                    deadline_seconds: (f.timeout_seconds.ceil() as u64 + 1).clamp(15, 1800),
                });
            }
        }
    }
    Ok(out)
}

/// The triggers and jobs as YAML in the shape of the Eventarc `Trigger` and Cloud
/// Scheduler `Job` REST resources; `${SERVICE_URL}` stands for the service's URL.
pub fn render_triggers_yaml(manifest: &Manifest, options: &Options) -> Result<String, String> {
    Ok(to_yaml(&triggers(manifest, options)?))
}

/// What [`render_triggers_yaml`] writes, as a JSON value: `eventarcTriggers` (Eventarc
/// `Trigger` resources) and `schedulerJobs` (Cloud Scheduler `Job` resources), each
/// naming its function's path in `destination.cloudRun.path` or `httpTarget.uri`.
pub fn triggers(manifest: &Manifest, options: &Options) -> Result<Value, String> {
    let parent = format!("projects/{}/locations/{}", options.project, options.region);
    let mut triggers = Vec::new();
    let mut jobs = Vec::new();
    for w in wiring(manifest, options)? {
        match w {
            Wiring::Eventarc {
                name,
                function,
                filters,
                path_pattern,
                content_type,
            } => {
                let mut event_filters: Vec<Value> = filters
                    .iter()
                    .map(|(a, v)| json!({"attribute": a, "value": v}))
                    .collect();
                if let Some((a, v)) = &path_pattern {
                    event_filters.push(
                        json!({"attribute": a, "value": v, "operator": "match-path-pattern"}),
                    );
                }
                let mut t = Map::new();
                t.insert("name".into(), json!(format!("{parent}/triggers/{name}")));
                t.insert("eventFilters".into(), Value::Array(event_filters));
                if let Some(ct) = content_type {
                    t.insert("eventDataContentType".into(), json!(ct));
                }
                if let Some(sa) = &options.service_account {
                    t.insert("serviceAccount".into(), json!(sa));
                }
                t.insert(
                    "destination".into(),
                    json!({"cloudRun": {"service": manifest.app, "region": options.region, "path": format!("/{function}")}}),
                );
                triggers.push(Value::Object(t));
            }
            Wiring::Scheduler {
                name,
                function,
                cron,
                deadline_seconds,
            } => {
                let mut oidc = Map::new();
                if let Some(sa) = &options.service_account {
                    oidc.insert("serviceAccountEmail".into(), json!(sa));
                }
                oidc.insert("audience".into(), json!("${SERVICE_URL}"));
                jobs.push(json!({
                    "name": format!("{parent}/jobs/{name}"),
                    "schedule": cron,
                    "timeZone": "Etc/UTC",
                    "attemptDeadline": format!("{deadline_seconds}s"),
                    "httpTarget": {
                        "uri": format!("${{SERVICE_URL}}/{function}"),
                        "httpMethod": "POST",
                        "oidcToken": oidc,
                    },
                }));
            }
        }
    }
    Ok(json!({
        "eventarcTriggers": triggers,
        "schedulerJobs": jobs,
    }))
}

/// `s` quoted for POSIX sh (single quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `deploy.sh`: the service, buckets, invoker rights, Eventarc triggers and Cloud
/// Scheduler jobs as `gcloud` commands. Idempotent: buckets and triggers are created
/// when missing, jobs created or updated. Expects `service.yaml` beside it.
pub fn render_deploy_script(manifest: &Manifest, options: &Options) -> Result<String, String> {
    let q = |s: &str| shell_quote(s);
    let scope = format!(
        "--project={} --region={}",
        q(&options.project),
        q(&options.region)
    );
    let location = format!(
        "--project={} --location={}",
        q(&options.project),
        q(&options.region)
    );
    let app = &manifest.app;
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Deploys the nube app {app} to Cloud Run in {} (rendered by nube-gcp from the app's manifest).\n",
        options.region
    ));
    s.push_str("# Storage triggers need the Cloud Storage service agent to hold roles/pubsub.publisher in the project.\n");
    s.push_str("set -eu\ncd \"$(dirname \"$0\")\"\n\n");
    for bucket in &manifest.buckets {
        let name = bucket_name(&options.project, app, bucket)?;
        s.push_str(&format!(
            "gcloud storage buckets describe gs://{name} --project={p} >/dev/null 2>&1 || \\\n  gcloud storage buckets create gs://{name} --project={p} --location={r} --uniform-bucket-level-access\n",
            p = q(&options.project),
            r = q(&options.region)
        ));
    }
    s.push_str(&format!(
        "\ngcloud run services replace service.yaml {scope}\n"
    ));
    s.push_str(&format!(
        "SERVICE_URL=$(gcloud run services describe {} {scope} --format='value(status.url)')\n",
        q(app)
    ));
    let has_http = manifest
        .functions
        .iter()
        .any(|f| matches!(f.trigger, TriggerManifest::Http { .. }));
    if has_http && manifest.settings.anonymous_http {
        s.push_str(&format!(
            "gcloud run services add-iam-policy-binding {} {scope} --member=allUsers --role=roles/run.invoker\n",
            q(app)
        ));
    }
    let wiring = wiring(manifest, options)?;
    if !wiring.is_empty()
        && let Some(sa) = &options.service_account
    {
        s.push_str(&format!(
            "gcloud run services add-iam-policy-binding {} {scope} --member={} --role=roles/run.invoker\n",
            q(app),
            q(&format!("serviceAccount:{sa}"))
        ));
    }
    let sa_flag = |flag: &str| {
        options
            .service_account
            .as_ref()
            .map(|sa| format!(" \\\n    --{flag}={}", q(sa)))
            .unwrap_or_default()
    };
    for w in &wiring {
        s.push('\n');
        match w {
            Wiring::Eventarc {
                name,
                function,
                filters,
                path_pattern,
                content_type,
            } => {
                s.push_str(&format!(
                    "gcloud eventarc triggers describe {name} {location} >/dev/null 2>&1 || \\\n  gcloud eventarc triggers create {name} {location} \\\n    --destination-run-service={} --destination-run-region={} --destination-run-path=/{function}",
                    q(app),
                    q(&options.region)
                ));
                for (a, v) in filters {
                    s.push_str(&format!(
                        " \\\n    --event-filters={}",
                        q(&format!("{a}={v}"))
                    ));
                }
                if let Some((a, v)) = path_pattern {
                    s.push_str(&format!(
                        " \\\n    --event-filters-path-pattern={}",
                        q(&format!("{a}={v}"))
                    ));
                }
                if let Some(ct) = content_type {
                    s.push_str(&format!(" \\\n    --event-data-content-type={ct}"));
                }
                s.push_str(&sa_flag("service-account"));
                s.push('\n');
            }
            Wiring::Scheduler {
                name,
                function,
                cron,
                deadline_seconds,
            } => {
                let flags = format!(
                    " {location} \\\n    --schedule={} --time-zone=Etc/UTC \\\n    --uri=\"$SERVICE_URL/{function}\" --http-method=POST \\\n    --oidc-token-audience=\"$SERVICE_URL\" --attempt-deadline={deadline_seconds}s{}",
                    q(cron),
                    sa_flag("oidc-service-account-email")
                );
                s.push_str(&format!(
                    "gcloud scheduler jobs create http {name}{flags} || \\\n  gcloud scheduler jobs update http {name}{flags}\n"
                ));
            }
        }
    }
    s.push_str("\necho \"deployed $SERVICE_URL\"\n");
    Ok(s)
}

/// The `Dockerfile` of the image: `binary` (a static executable, path relative to
/// the build context) on `gcr.io/distroless/static-debian12:nonroot`, run as user
/// 65532, listening on port 8080.
pub fn render_dockerfile(binary: &str) -> String {
    format!(
        "# A nube app for Cloud Run: one static binary, run as a non-root user.\n\
         FROM gcr.io/distroless/static-debian12:nonroot\n\
         COPY --chown={uid}:{uid} {binary} /app\n\
         USER {uid}:{uid}\n\
         EXPOSE {CONTAINER_PORT}\n\
         ENTRYPOINT [\"/app\"]\n",
        uid = NON_ROOT_UID
    )
}

fn plain(s: &str) -> bool {
    let reserved = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ];
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !s.starts_with(['-', '.'])
        && !reserved.contains(&s.to_ascii_lowercase().as_str())
        && s.parse::<f64>().is_err()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if plain(s) => s.clone(),
        Value::String(s) => Value::from(s.as_str()).to_string(),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
        other => other.to_string(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => false,
    }
}

fn block(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                out.push_str(&format!("{pad}{}:", scalar(&Value::from(k.as_str()))));
                if is_block(val) {
                    out.push('\n');
                    block(out, val, indent + 2);
                } else {
                    out.push_str(&format!(" {}\n", scalar(val)));
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                if is_block(item) {
                    let mut inner = String::new();
                    block(&mut inner, item, indent + 2);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&inner[indent + 2..]);
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// `value` as block-style YAML, keys in sorted order (strings quoted JSON-style
/// when plain YAML would read them otherwise).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    block(&mut out, value, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nube::app::Settings;
    use nube::http::Route;
    use nube::manifest::FunctionManifest;

    fn function(name: &str, trigger: TriggerManifest) -> FunctionManifest {
        FunctionManifest {
            name: name.into(),
            trigger,
            timeout_seconds: 30.0,
            uses: None,
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            nube_version: "0.1.0".into(),
            app: "shop".into(),
            functions: vec![
                function(
                    "api",
                    TriggerManifest::Http {
                        routes: vec![Route {
                            method: "GET".into(),
                            path: "/orders".into(),
                        }],
                    },
                ),
                function(
                    "nightly",
                    TriggerManifest::Timer {
                        schedule: "0 2 * * *".into(),
                    },
                ),
                function(
                    "thumbs",
                    TriggerManifest::BlobCreated {
                        bucket: "uploads".into(),
                        prefix: "original/".into(),
                    },
                ),
                function(
                    "on-order",
                    TriggerManifest::DocumentCreated {
                        collection: "orders".into(),
                    },
                ),
            ],
            collections: vec!["orders".into()],
            buckets: vec!["uploads".into()],
            settings: Settings::default(),
        }
    }

    fn options() -> Options {
        let mut o = Options::new(
            "my-proj",
            "europe-west1",
            "europe-west1-docker.pkg.dev/my-proj/nube/shop:1",
        );
        o.service_account = Some("nube@my-proj.iam.gserviceaccount.com".into());
        o
    }

    #[test]
    fn the_service_is_knative_on_port_8080() {
        let s = service(&manifest(), &options()).unwrap();
        assert_eq!(s["apiVersion"], "serving.knative.dev/v1");
        assert_eq!(s["kind"], "Service");
        assert_eq!(s["metadata"]["name"], "shop");
        let spec = &s["spec"]["template"]["spec"];
        assert_eq!(spec["timeoutSeconds"], 31);
        assert_eq!(
            spec["serviceAccountName"],
            "nube@my-proj.iam.gserviceaccount.com"
        );
        let c = &spec["containers"][0];
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        let env = c["env"].as_array().unwrap();
        assert!(
            env.contains(&json!({"name": "NUBE_BUCKET_UPLOADS", "value": "my-proj-shop-uploads"}))
        );
        assert!(env.contains(&json!({"name": "GOOGLE_CLOUD_PROJECT", "value": "my-proj"})));
        assert!(
            !env.iter().any(|e| e["name"] == "PORT"),
            "PORT is Cloud Run's"
        );
        let yaml = render_service(&manifest(), &options()).unwrap();
        assert!(
            yaml.starts_with("apiVersion: serving.knative.dev/v1\nkind: Service\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("          image: \"europe-west1-docker.pkg.dev/my-proj/nube/shop:1\"\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("            - containerPort: 8080\n              name: http1\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("autoscaling.knative.dev/maxScale: \"100\""),
            "{yaml}"
        );
    }

    #[test]
    fn long_timeouts_are_refused() {
        let mut m = manifest();
        m.functions[1].timeout_seconds = 4000.0;
        assert!(service(&m, &options()).unwrap_err().contains("3600"));
    }

    #[test]
    fn triggers_as_yaml() {
        let yaml = render_triggers_yaml(&manifest(), &options()).unwrap();
        for needle in [
            "    name: projects/my-proj/locations/europe-west1/triggers/shop-thumbs\n",
            "        value: google.cloud.storage.object.v1.finalized\n",
            "      - attribute: bucket\n        value: my-proj-shop-uploads\n",
            "      - attribute: database\n        value: \"(default)\"\n",
            "      - attribute: document\n        operator: match-path-pattern\n        value: \"orders/{id}\"\n",
            "    eventDataContentType: application/protobuf\n",
            "        path: /on-order\n",
            "    name: projects/my-proj/locations/europe-west1/jobs/shop-nightly\n",
            "    schedule: \"0 2 * * *\"\n",
            "    timeZone: Etc/UTC\n",
            "      uri: \"${SERVICE_URL}/nightly\"\n",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
        }
    }

    #[test]
    fn deploy_script_has_gcloud_commands() {
        let sh = render_deploy_script(&manifest(), &options()).unwrap();
        for needle in [
            "#!/bin/sh\n",
            "gcloud run services replace service.yaml --project=my-proj --region=europe-west1\n",
            "gcloud storage buckets create gs://my-proj-shop-uploads",
            "gcloud eventarc triggers create shop-thumbs --project=my-proj --location=europe-west1",
            "--destination-run-path=/thumbs",
            "--event-filters=type=google.cloud.storage.object.v1.finalized",
            "--event-filters=bucket=my-proj-shop-uploads",
            "--event-filters=type=google.cloud.firestore.document.v1.created",
            "--event-filters='database=(default)'",
            "--event-filters-path-pattern='document=orders/{id}'",
            "--event-data-content-type=application/protobuf",
            "gcloud scheduler jobs create http shop-nightly",
            "--schedule='0 2 * * *' --time-zone=Etc/UTC",
            "--uri=\"$SERVICE_URL/nightly\" --http-method=POST",
            "--oidc-service-account-email=nube@my-proj.iam.gserviceaccount.com",
            "gcloud scheduler jobs update http shop-nightly",
            "--member=serviceAccount:nube@my-proj.iam.gserviceaccount.com --role=roles/run.invoker",
        ] {
            assert!(sh.contains(needle), "missing {needle:?} in\n{sh}");
        }
        assert!(
            !sh.contains("allUsers"),
            "HTTP needs a caller identity unless anonymous"
        );
        let mut m = manifest();
        m.settings.anonymous_http = true;
        assert!(
            render_deploy_script(&m, &options())
                .unwrap()
                .contains("--member=allUsers")
        );
    }

    #[test]
    fn rates_become_unix_cron_and_odd_ones_fail() {
        let mut m = manifest();
        m.functions[1].trigger = TriggerManifest::Timer {
            schedule: "rate(5 minutes)".into(),
        };
        let yaml = render_triggers_yaml(&m, &options()).unwrap();
        assert!(yaml.contains("schedule: \"*/5 * * * *\""), "{yaml}");
        m.functions[1].trigger = TriggerManifest::Timer {
            schedule: "rate(7 minutes)".into(),
        };
        assert!(
            render_triggers_yaml(&m, &options())
                .unwrap_err()
                .contains("nightly")
        );
    }

    #[test]
    fn names_that_do_not_fit_are_refused() {
        assert!(bucket_name(&"p".repeat(40), "shop", "uploads-of-all-kinds").is_err());
        assert!(trigger_name(&"a".repeat(32), &"f".repeat(32)).is_err());
        let mut m = manifest();
        m.buckets.clear();
        assert!(
            render_deploy_script(&m, &options())
                .unwrap_err()
                .contains("does not declare")
        );
    }

    #[test]
    fn the_dockerfile_runs_the_static_binary_as_non_root() {
        let d = render_dockerfile("target/x86_64-unknown-linux-musl/release/shop");
        assert!(d.contains("FROM gcr.io/distroless/static-debian12:nonroot\n"));
        assert!(d.contains(
            "COPY --chown=65532:65532 target/x86_64-unknown-linux-musl/release/shop /app\n"
        ));
        assert!(d.contains("USER 65532:65532\n"));
        assert!(d.contains("ENTRYPOINT [\"/app\"]\n"));
    }

    #[test]
    fn yaml_quotes_what_plain_yaml_would_misread() {
        let y = to_yaml(
            &json!({"a": "true", "b": "8080", "c": "x: y", "d": [], "e": [{"k": 1, "l": [2, "z"]}], "f": null}),
        );
        assert_eq!(
            y,
            "a: \"true\"\nb: \"8080\"\nc: \"x: y\"\nd: []\ne:\n  - k: 1\n    l:\n      - 2\n      - z\nf: null\n"
        );
    }
}
