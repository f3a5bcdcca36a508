//! Packaging descriptors rendered from an app's [`Manifest`] (pure functions: no
//! network, no `gcloud`): the whole app as one Cloud Run service, its event triggers
//! and timers wired to the service's `POST /{function}` paths ([`crate::server`]).
//! When the app's HTTP is public (`anonymous_http`), its event functions get a
//! second, private service ([`splits_events`]): Cloud Run checks IAM per service,
//! and on one public service anyone could post an event.
//!
//! | manifest | rendered |
//! |---|---|
//! | the app | [`render_service`]: a Knative `serving.knative.dev/v1` `Service` (`service.yaml`, for `gcloud run services replace`): one container, port 8080, `timeoutSeconds` = the longest function timeout + 1 s, `GOOGLE_CLOUD_PROJECT`, `NUBE_BUCKET_*` and a non-default `NUBE_FIRESTORE_DATABASE` in its environment; when it [`splits_events`], `NUBE_SERVE=http`, and [`render_events_service`] is the same image as `<app>-events` with `NUBE_SERVE=events` (`service-events.yaml`), which only the invoker account may call |
//! | blob created | an Eventarc trigger: `type=google.cloud.storage.object.v1.finalized`, `bucket=<physical bucket>`, to `/{function}` (Eventarc has no prefix filter: the server acknowledges keys outside the prefix without running the function) |
//! | document created | an Eventarc trigger: `type=google.cloud.firestore.document.v1.created`, `database=<database>`, path pattern `document=<collection>/{id}`, event data `application/protobuf`, to `/{function}` |
//! | timer | a Cloud Scheduler HTTP job: `POST <events service URL>/{function}` with an OIDC token of the invoker account, [`Schedule::to_unix_cron`] in `Etc/UTC` |
//! | who may call | Eventarc and Cloud Scheduler call as [`Options::service_account`], else the project's default compute account; it gets `roles/run.invoker` on the events' service and `roles/eventarc.eventReceiver`; the Cloud Storage service agent gets `roles/pubsub.publisher`; Firestore triggers are created in the database's own location, a multi-region such as `nam5` included (Eventarc refuses any other), delivering to the service's region |
//! | bucket | a Cloud Storage bucket `<project>-<app>-<bucket>` |
//!
//! Triggers and jobs come both as a `deploy.sh` of `gcloud` commands
//! ([`render_deploy_script`]) and as YAML in the shape of the Eventarc and Cloud
//! Scheduler REST resources ([`render_triggers_yaml`]; what is known only at deploy
//! time, such as the service URL, is a `${...}` placeholder there). [`render_dockerfile`] is the
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

/// The Firestore database a project has from the start.
pub const DEFAULT_DATABASE: &str = "(default)";

/// What the manifest does not say: where and how the app is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The Google Cloud project id.
    pub project: String,
    /// The region of the service, triggers and jobs (`europe-west1`).
    pub region: String,
    /// The container image (`europe-west1-docker.pkg.dev/<project>/nube/<app>:<tag>`).
    pub image: String,
    /// The service account the services run as, and Eventarc and Cloud Scheduler
    /// call them with (it gets `roles/run.invoker` on the events' service); `None`:
    /// the project's default compute account, which `deploy.sh` looks up.
    pub service_account: Option<String>,
    /// The Firestore database of the document triggers and the store
    /// (`(default)`; another is passed to the service as `NUBE_FIRESTORE_DATABASE`).
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
            firestore_database: DEFAULT_DATABASE.to_owned(),
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

/// Whether the app's event functions get a private service of their own: its HTTP
/// is public (`anonymous_http`) and it has event functions too. One service would
/// let anyone on the internet post events to them (`POST /{function}`), since
/// Cloud Run's IAM check is per service, not per path.
pub fn splits_events(manifest: &Manifest) -> bool {
    let http =
        |f: &&nube::manifest::FunctionManifest| matches!(f.trigger, TriggerManifest::Http { .. });
    manifest.settings.anonymous_http
        && manifest.functions.iter().any(|f| http(&f))
        && manifest.functions.iter().any(|f| !http(&f))
}

/// The service the event triggers and timer jobs call: `<app>-events` when the app
/// [`splits_events`], else `<app>`.
pub fn events_service_name(manifest: &Manifest) -> String {
    if splits_events(manifest) {
        format!("{}-events", manifest.app)
    } else {
        manifest.app.clone()
    }
}

/// The Knative `Service` of the app, as a JSON value (see [`render_service`]): the
/// whole app, or its HTTP functions when it [`splits_events`] (`NUBE_SERVE=http`).
pub fn service(manifest: &Manifest, options: &Options) -> Result<Value, String> {
    let serve = splits_events(manifest).then_some(crate::server::Serve::Http);
    service_named(manifest, options, &manifest.app, serve)
}

/// The private service of the app's event functions (`NUBE_SERVE=events`), when it
/// [`splits_events`].
pub fn events_service(manifest: &Manifest, options: &Options) -> Result<Option<Value>, String> {
    if !splits_events(manifest) {
        return Ok(None);
    }
    let name = events_service_name(manifest);
    service_named(manifest, options, &name, Some(crate::server::Serve::Events)).map(Some)
}

fn service_named(
    manifest: &Manifest,
    options: &Options,
    name: &str,
    serve: Option<crate::server::Serve>,
) -> Result<Value, String> {
    let mut env = vec![json!({"name": "GOOGLE_CLOUD_PROJECT", "value": options.project})];
    if let Some(serve) = serve {
        env.push(json!({"name": "NUBE_SERVE", "value": serve.as_str()}));
    }
    if options.firestore_database != DEFAULT_DATABASE {
        env.push(json!({"name": "NUBE_FIRESTORE_DATABASE", "value": options.firestore_database}));
    }
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
            "name": name,
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

/// `service.yaml`: the app as one Cloud Run service, or its HTTP half when it
/// [`splits_events`] (the table in the module docs).
pub fn render_service(manifest: &Manifest, options: &Options) -> Result<String, String> {
    Ok(to_yaml(&service(manifest, options)?))
}

/// `service-events.yaml`: the private service of the event functions, when the app
/// [`splits_events`].
pub fn render_events_service(
    manifest: &Manifest,
    options: &Options,
) -> Result<Option<String>, String> {
    Ok(events_service(manifest, options)?.map(|s| to_yaml(&s)))
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
        /// In the Firestore database's location rather than the service's region.
        firestore: bool,
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
                    firestore: false,
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
                firestore: true,
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
/// Scheduler `Job` REST resources (see [`triggers`] for the placeholders).
pub fn render_triggers_yaml(manifest: &Manifest, options: &Options) -> Result<String, String> {
    Ok(to_yaml(&triggers(manifest, options)?))
}

/// What `deploy.sh` calls the URL of the service the events go to.
const EVENTS_URL: &str = "EVENTS_URL";
/// What `deploy.sh` calls the account Eventarc and Cloud Scheduler call with, when
/// none is given.
pub const INVOKER: &str = "INVOKER_SERVICE_ACCOUNT";
/// What `deploy.sh` calls the Eventarc location of the Firestore database.
const FIRESTORE_LOCATION: &str = "FIRESTORE_LOCATION";

/// What [`render_triggers_yaml`] writes, as a JSON value: `eventarcTriggers` (Eventarc
/// `Trigger` resources) and `schedulerJobs` (Cloud Scheduler `Job` resources), each
/// naming its function's path in `destination.cloudRun.path` or `httpTarget.uri`.
/// What is known only at deploy time is a `${...}` placeholder, named as `deploy.sh`
/// names it: `${EVENTS_URL}` (the URL of the service the events go to),
/// `${FIRESTORE_LOCATION}` (the Eventarc location of the Firestore database), and,
/// without [`Options::service_account`], `${INVOKER_SERVICE_ACCOUNT}` (the project's
/// default compute account).
pub fn triggers(manifest: &Manifest, options: &Options) -> Result<Value, String> {
    let locations = |location: &str| format!("projects/{}/locations/{location}", options.project);
    let invoker = options
        .service_account
        .clone()
        .unwrap_or_else(|| format!("${{{INVOKER}}}"));
    let events_service = events_service_name(manifest);
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
                firestore,
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
                let location = if firestore {
                    locations(&format!("${{{FIRESTORE_LOCATION}}}"))
                } else {
                    locations(&options.region)
                };
                let mut t = Map::new();
                t.insert("name".into(), json!(format!("{location}/triggers/{name}")));
                t.insert("eventFilters".into(), Value::Array(event_filters));
                if let Some(ct) = content_type {
                    t.insert("eventDataContentType".into(), json!(ct));
                }
                t.insert("serviceAccount".into(), json!(invoker));
                t.insert(
                    "destination".into(),
                    json!({"cloudRun": {"service": events_service, "region": options.region, "path": format!("/{function}")}}),
                );
                triggers.push(Value::Object(t));
            }
            Wiring::Scheduler {
                name,
                function,
                cron,
                deadline_seconds,
            } => {
                jobs.push(json!({
                    "name": format!("{}/jobs/{name}", locations(&options.region)),
                    "schedule": cron,
                    "timeZone": "Etc/UTC",
                    "attemptDeadline": format!("{deadline_seconds}s"),
                    "httpTarget": {
                        "uri": format!("${{{EVENTS_URL}}}/{function}"),
                        "httpMethod": "POST",
                        "oidcToken": {
                            "serviceAccountEmail": invoker,
                            "audience": format!("${{{EVENTS_URL}}}"),
                        },
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

/// The Artifact Registry location, project and repository of `image`
/// (`europe-west1-docker.pkg.dev/<project>/<repository>/<name>:<tag>`), which
/// `deploy.sh` creates when missing; `None` for an image elsewhere.
fn artifact_repository(image: &str) -> Option<(&str, &str, &str)> {
    let mut parts = image.split('/');
    let location = parts.next()?.strip_suffix("-docker.pkg.dev")?;
    let project = parts.next()?;
    let repository = parts.next()?;
    parts.next()?;
    Some((location, project, repository))
}

/// `deploy.sh`: the buckets, the service (two when the app [`splits_events`]), who may
/// call them, the rights Eventarc needs, the Eventarc triggers and the Cloud
/// Scheduler jobs, as `gcloud` commands. Idempotent: buckets are created when missing,
/// triggers created (retried while new role bindings propagate) or pointed at the
/// events' service again, jobs created or updated, role bindings added again
/// harmlessly.
/// First it enables the APIs the app needs, creates the image's Artifact Registry
/// repository when missing and builds the image with Cloud Build
/// (`gcloud builds submit`) from the `Dockerfile` and executable beside it; it expects
/// `service.yaml` (and `service-events.yaml`) there too. What only the
/// project knows is looked up: the default compute account (when no service account
/// was given), the Cloud Storage service agent, the Firestore database's location.
pub fn render_deploy_script(manifest: &Manifest, options: &Options) -> Result<String, String> {
    let q = |s: &str| shell_quote(s);
    let project = q(&options.project);
    let scope = format!("--project={project} --region={}", q(&options.region));
    let app = &manifest.app;
    let wiring = wiring(manifest, options)?;
    // Which kinds of Eventarc trigger there are: Cloud Storage ones, Firestore ones.
    let triggers_on = |on_firestore: bool| {
        wiring
            .iter()
            .any(|w| matches!(w, Wiring::Eventarc { firestore, .. } if *firestore == on_firestore))
    };
    let (storage_triggers, firestore_triggers) = (triggers_on(false), triggers_on(true));
    let eventarc = storage_triggers || firestore_triggers;
    let uses_firestore = !manifest.collections.is_empty() || firestore_triggers;
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Deploys the nube app {app} to Cloud Run in {} (rendered by nube-gcp from the app's manifest).\n",
        options.region
    ));
    s.push_str("set -eu\ncd \"$(dirname \"$0\")\"\n\n");
    let timers = wiring.iter().any(|w| matches!(w, Wiring::Scheduler { .. }));
    let mut apis = vec!["run", "artifactregistry", "cloudbuild"];
    if eventarc {
        apis.extend(["eventarc", "pubsub"]);
    }
    if timers {
        apis.push("cloudscheduler");
    }
    if uses_firestore {
        apis.push("firestore");
    }
    let apis: Vec<String> = apis.iter().map(|a| format!("{a}.googleapis.com")).collect();
    s.push_str(&format!(
        "# The APIs the deployment uses (enabling one already on changes nothing).\n\
         gcloud services enable {} --project={project}\n",
        apis.join(" ")
    ));
    if let Some((location, image_project, repository)) = artifact_repository(&options.image) {
        s.push_str(&format!(
            "gcloud artifacts repositories describe {repository} --location={location} --project={image_project} >/dev/null 2>&1 || \\\n  \
             gcloud artifacts repositories create {repository} --repository-format=docker --location={location} --project={image_project}\n",
            repository = q(repository),
            location = q(location),
            image_project = q(image_project),
        ));
    }
    if uses_firestore {
        s.push_str(&format!(
            "# The Firestore database of the app's documents, created in the service's region when missing.\n\
             gcloud firestore databases describe --database={db} --project={project} >/dev/null 2>&1 || \\\n  \
             gcloud firestore databases create --database={db} --location={region} --type=firestore-native --project={project}\n",
            db = q(&options.firestore_database),
            region = q(&options.region),
        ));
    }
    s.push_str(&format!(
        "# The image, built by Cloud Build from the Dockerfile and executable beside this script.\n\
         gcloud builds submit --tag {} --project={project} .\n\n",
        q(&options.image)
    ));
    if eventarc {
        s.push_str(
            "# Role bindings take a few minutes to reach Eventarc: creating a trigger right\n\
             # after them may be refused at first.\n\
             retry() {\n  for wait in 20 40 60 120; do\n    \"$@\" && return 0\n    echo \"retrying in ${wait}s (IAM changes take a while to apply)\" >&2\n    sleep \"$wait\"\n  done\n  \"$@\"\n}\n\n",
        );
    }
    if !wiring.is_empty() {
        match &options.service_account {
            Some(sa) => s.push_str(&format!("{INVOKER}={}\n", q(sa))),
            None => s.push_str(&format!(
                "# Eventarc and Cloud Scheduler call the events with the project's default compute account.\n\
                 PROJECT_NUMBER=$(gcloud projects describe {project} --format='value(projectNumber)')\n\
                 {INVOKER}=\"$PROJECT_NUMBER-compute@developer.gserviceaccount.com\"\n"
            )),
        }
    }
    for bucket in &manifest.buckets {
        let name = bucket_name(&options.project, app, bucket)?;
        s.push_str(&format!(
            "gcloud storage buckets describe gs://{name} --project={project} >/dev/null 2>&1 || \\\n  gcloud storage buckets create gs://{name} --project={project} --location={r} --uniform-bucket-level-access\n",
            r = q(&options.region)
        ));
    }
    let url = |service: &str| {
        format!(
            "$(gcloud run services describe {} {scope} --format='value(status.url)')",
            q(service)
        )
    };
    s.push_str(&format!(
        "\ngcloud run services replace service.yaml {scope}\nSERVICE_URL={}\n",
        url(app)
    ));
    let events_service = events_service_name(manifest);
    if splits_events(manifest) {
        s.push_str(&format!(
            "# The event functions, private: only {INVOKER} may call them.\n\
             gcloud run services replace service-events.yaml {scope}\n{EVENTS_URL}={}\n",
            url(&events_service)
        ));
    } else if !wiring.is_empty() {
        s.push_str(&format!("{EVENTS_URL}=\"$SERVICE_URL\"\n"));
    }
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
    if !wiring.is_empty() {
        s.push_str(&format!(
            "gcloud run services add-iam-policy-binding {} {scope} --member=\"serviceAccount:${INVOKER}\" --role=roles/run.invoker\n",
            q(&events_service)
        ));
    }
    let project_role = |member: &str, role: &str| {
        format!(
            "gcloud projects add-iam-policy-binding {project} --member=\"{member}\" --role={role} --condition=None >/dev/null\n"
        )
    };
    if eventarc {
        s.push_str(&project_role(
            &format!("serviceAccount:${INVOKER}"),
            "roles/eventarc.eventReceiver",
        ));
    }
    if storage_triggers {
        s.push_str(&format!(
            "# Cloud Storage publishes its events through Pub/Sub as its service agent.\n\
             GCS_AGENT=$(gcloud storage service-agent --project={project})\n"
        ));
        s.push_str(&project_role(
            "serviceAccount:$GCS_AGENT",
            "roles/pubsub.publisher",
        ));
    }
    if firestore_triggers {
        s.push_str(&format!(
            "# Firestore triggers live where the database does, a multi-region (nam5, eur3) too;\n\
             # Eventarc refuses any other location. They still deliver to the service's region.\n\
             {FIRESTORE_LOCATION}=$(gcloud firestore databases describe --database={} --project={project} --format='value(locationId)')\n",
            q(&options.firestore_database)
        ));
    }
    for w in &wiring {
        s.push('\n');
        match w {
            Wiring::Eventarc {
                name,
                function,
                filters,
                path_pattern,
                content_type,
                firestore,
            } => {
                let location = if *firestore {
                    format!("--project={project} --location=\"${FIRESTORE_LOCATION}\"")
                } else {
                    format!("--project={project} --location={}", q(&options.region))
                };
                let destination = format!(
                    " \\\n    --destination-run-service={} --destination-run-region={} --destination-run-path=/{function} \\\n    --service-account=\"${INVOKER}\"",
                    q(&events_service),
                    q(&options.region)
                );
                // An existing trigger is pointed at the service again (it moves when
                // the events get a service of their own); its filters cannot change in
                // place: delete it to change them.
                s.push_str(&format!(
                    "if gcloud eventarc triggers describe {name} {location} >/dev/null 2>&1; then\n  gcloud eventarc triggers update {name} {location}{destination}\nelse\n  retry gcloud eventarc triggers create {name} {location}{destination}"
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
                s.push_str("\nfi\n");
            }
            Wiring::Scheduler {
                name,
                function,
                cron,
                deadline_seconds,
            } => {
                let flags = format!(
                    " --project={project} --location={} \\\n    --schedule={} --time-zone=Etc/UTC \\\n    --uri=\"${EVENTS_URL}/{function}\" --http-method=POST \\\n    --oidc-service-account-email=\"${INVOKER}\" --oidc-token-audience=\"${EVENTS_URL}\" \\\n    --attempt-deadline={deadline_seconds}s",
                    q(&options.region),
                    q(cron),
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
            "      uri: \"${EVENTS_URL}/nightly\"\n",
            "        audience: \"${EVENTS_URL}\"\n",
            "        serviceAccountEmail: \"nube@my-proj.iam.gserviceaccount.com\"\n",
            "    name: \"projects/my-proj/locations/${FIRESTORE_LOCATION}/triggers/shop-on-order\"\n",
            "    serviceAccount: \"nube@my-proj.iam.gserviceaccount.com\"\n",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
        }
        // Without a service account, the one deploy.sh finds.
        let mut o = options();
        o.service_account = None;
        let yaml = render_triggers_yaml(&manifest(), &o).unwrap();
        assert!(
            yaml.contains("serviceAccountEmail: \"${INVOKER_SERVICE_ACCOUNT}\"\n"),
            "{yaml}"
        );
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
            "--uri=\"$EVENTS_URL/nightly\" --http-method=POST",
            "--oidc-service-account-email=\"$INVOKER_SERVICE_ACCOUNT\"",
            "INVOKER_SERVICE_ACCOUNT=nube@my-proj.iam.gserviceaccount.com\n",
            "gcloud scheduler jobs update http shop-nightly",
            "gcloud run services add-iam-policy-binding shop --project=my-proj --region=europe-west1 --member=\"serviceAccount:$INVOKER_SERVICE_ACCOUNT\" --role=roles/run.invoker",
            "--role=roles/eventarc.eventReceiver --condition=None",
            "GCS_AGENT=$(gcloud storage service-agent --project=my-proj)\n",
            "--member=\"serviceAccount:$GCS_AGENT\" --role=roles/pubsub.publisher",
            "gcloud eventarc triggers create shop-on-order --project=my-proj --location=\"$FIRESTORE_LOCATION\"",
            "--service-account=\"$INVOKER_SERVICE_ACCOUNT\"",
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

    /// Public HTTP and events on one service would let anyone post events: the events
    /// get a private service of their own.
    #[test]
    fn public_http_puts_the_events_on_a_private_service() {
        let mut m = manifest();
        assert!(!splits_events(&m), "not public: one private service");
        assert_eq!(events_service(&m, &options()).unwrap(), None);
        m.settings.anonymous_http = true;
        assert!(splits_events(&m));
        let env = |s: &Value| s["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        let http = service(&m, &options()).unwrap();
        assert_eq!(http["metadata"]["name"], "shop");
        assert!(
            env(&http)
                .as_array()
                .unwrap()
                .contains(&json!({"name": "NUBE_SERVE", "value": "http"}))
        );
        let events = events_service(&m, &options()).unwrap().unwrap();
        assert_eq!(events["metadata"]["name"], "shop-events");
        assert!(
            env(&events)
                .as_array()
                .unwrap()
                .contains(&json!({"name": "NUBE_SERVE", "value": "events"}))
        );
        let t = triggers(&m, &options()).unwrap();
        for trigger in t["eventarcTriggers"].as_array().unwrap() {
            assert_eq!(trigger["destination"]["cloudRun"]["service"], "shop-events");
        }
        let sh = render_deploy_script(&m, &options()).unwrap();
        assert!(sh.contains("gcloud run services replace service-events.yaml --project=my-proj --region=europe-west1\n"), "{sh}");
        assert!(sh.contains("gcloud run services add-iam-policy-binding shop --project=my-proj --region=europe-west1 --member=allUsers"), "{sh}");
        assert!(
            !sh.contains("shop-events --project=my-proj --region=europe-west1 --member=allUsers"),
            "{sh}"
        );
        assert!(sh.contains("add-iam-policy-binding shop-events --project=my-proj --region=europe-west1 --member=\"serviceAccount:$INVOKER_SERVICE_ACCOUNT\""), "{sh}");
        assert!(sh.contains("--destination-run-service=shop-events"), "{sh}");
        assert!(
            sh.contains("gcloud firestore databases describe --database='(default)' --project=my-proj >/dev/null 2>&1 || \\\n  gcloud firestore databases create --database='(default)' --location=europe-west1 --type=firestore-native --project=my-proj\n"),
            "a fresh project gets its database: {sh}"
        );
        // Only events, or only HTTP: one service.
        m.functions
            .retain(|f| matches!(f.trigger, TriggerManifest::Http { .. }));
        assert!(!splits_events(&m));
    }

    /// What `deploy.sh` did against a stand-in `gcloud` that answers as a project
    /// would (the Firestore database in `firestore_location`; the Eventarc triggers
    /// already there when `existing`): whether it succeeded, what it printed, and
    /// every `gcloud` call.
    fn deploy_against_stand_in(firestore_location: &str, existing: bool) -> (bool, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gcloud.log");
        let gcloud = dir.path().join("gcloud");
        let triggers = if existing { "exit 0" } else { "exit 1" };
        std::fs::write(
            &gcloud,
            format!(
                "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$*\" in\n\
                 'projects describe'*) echo 123456789 ;;\n\
                 'run services describe shop-events'*) echo https://shop-events-x.a.run.app ;;\n\
                 'run services describe'*) echo https://shop-x.a.run.app ;;\n\
                 'storage service-agent'*) echo service-1@gs-project-accounts.iam.gserviceaccount.com ;;\n\
                 'firestore databases describe'*) echo {firestore_location} ;;\n\
                 'eventarc triggers describe'*) {triggers} ;;\n\
                 *' describe '*|'scheduler jobs create'*) exit 1 ;;\n\
                 esac\n",
                log = log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gcloud, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut m = manifest();
        m.settings.anonymous_http = true;
        let mut o = options();
        o.service_account = None;
        let script = dir.path().join("deploy.sh");
        std::fs::write(&script, render_deploy_script(&m, &o).unwrap()).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        let out = std::process::Command::new("sh")
            .arg(&script)
            .env("PATH", path)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        (out.status.success(), printed, calls)
    }

    /// The script runs from start to end (`set -eu`: no unset variable, no failing
    /// command) against a `gcloud` that answers as a fresh project does, and asks for
    /// what the deployment needs; run again, it points the triggers at the service.
    #[test]
    fn the_deploy_script_runs_against_a_stand_in_gcloud() {
        let (ok, printed, calls) = deploy_against_stand_in("nam5", false);
        assert!(ok, "{printed}\ncalls:\n{calls}");
        for needle in [
            "--member=serviceAccount:123456789-compute@developer.gserviceaccount.com --role=roles/run.invoker",
            "--member=serviceAccount:123456789-compute@developer.gserviceaccount.com --role=roles/eventarc.eventReceiver",
            "--member=serviceAccount:service-1@gs-project-accounts.iam.gserviceaccount.com --role=roles/pubsub.publisher",
            "eventarc triggers create shop-on-order --project=my-proj --location=nam5 --destination-run-service=shop-events --destination-run-region=europe-west1",
            "eventarc triggers create shop-thumbs --project=my-proj --location=europe-west1",
            "--destination-run-service=shop-events",
            "services enable run.googleapis.com artifactregistry.googleapis.com cloudbuild.googleapis.com eventarc.googleapis.com pubsub.googleapis.com cloudscheduler.googleapis.com firestore.googleapis.com --project=my-proj",
            "artifacts repositories create nube --repository-format=docker --location=europe-west1 --project=my-proj",
            "--service-account=123456789-compute@developer.gserviceaccount.com",
            "--uri=https://shop-events-x.a.run.app/nightly",
            "--oidc-service-account-email=123456789-compute@developer.gserviceaccount.com --oidc-token-audience=https://shop-events-x.a.run.app",
            "scheduler jobs update http shop-nightly",
        ] {
            assert!(calls.contains(needle), "missing {needle:?} in\n{calls}");
        }
        let built = calls
            .find("builds submit --tag europe-west1-docker.pkg.dev/my-proj/nube/shop:1 --project=my-proj .")
            .expect("the image is built");
        assert!(
            built < calls.find("run services replace").unwrap(),
            "the image is built before the services use it:\n{calls}"
        );
        assert_eq!(
            artifact_repository("europe-west1-docker.pkg.dev/other-proj/nube/shop:1"),
            Some(("europe-west1", "other-proj", "nube"))
        );
        assert_eq!(artifact_repository("gcr.io/my-proj/shop:1"), None);
        assert!(
            printed.contains("deployed https://shop-x.a.run.app"),
            "{printed}"
        );

        let (ok, printed, calls) = deploy_against_stand_in("europe-west3", true);
        assert!(ok, "{printed}\ncalls:\n{calls}");
        assert!(!calls.contains("eventarc triggers create"), "{calls}");
        assert!(
            calls.contains("eventarc triggers update shop-on-order --project=my-proj --location=europe-west3 --destination-run-service=shop-events --destination-run-region=europe-west1 --destination-run-path=/on-order --service-account=123456789-compute@developer.gserviceaccount.com"),
            "{calls}"
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
