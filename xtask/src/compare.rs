//! `cargo xtask compare`: what each function of an app becomes on every target (the
//! local runtime, AWS Lambda, Azure Functions, Cloud Run), side by side.
//!
//! - `model.rs`: the comparison, picked out of the descriptors the packager renders;
//! - `render.rs`: as an aligned terminal table, GitHub Markdown or one HTML page;
//! - `measure.rs`: `--measure`, start-up and idle memory of each target's binary here;
//! - `guide.rs`: the guide `docs/one-app-three-clouds.md` (its generated tables) and
//!   `docs/one-app-three-clouds.html`, and the tests that keep them current.

mod guide;
mod measure;
mod model;
mod render;

use std::path::PathBuf;

use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};

use crate::package::aws::{app_package, host_manifest};
use crate::target::Target;
use model::{Deployment, Sizes};

/// The app compared when `--app` is not given.
pub const DEFAULT_APP: &str = "delivery-app";

/// The long help of `cargo xtask compare`.
pub const LONG_ABOUT: &str = "\
Show what each function of an app becomes on every target, side by side: the local
runtime, AWS Lambda, Azure Functions and Google Cloud Run.

For every function, one column per target:
  becomes      local: routes or an outbox subscriber of the one process; AWS: a Lambda
               function and its event source; Azure: the function(s) and bindings (an HTTP
               function whose routes start differently becomes <fn>-<segment> functions);
               GCP: routes of the Cloud Run service, or a path of it plus an Eventarc
               trigger or a Cloud Scheduler job
  trigger      its configuration in the target's own syntax: routes, the schedule as
               EventBridge cron / NCRONTAB / unix cron, bucket and prefix filters, the
               collection's table stream / Cosmos DB container / Firestore path pattern
  permissions  who may call it and what it may reach
  environment  the variables it reads there
and for the whole app: the artifact, its size (or how to build it), every variable read.

Everything is read out of the descriptors `cargo xtask package` renders from the app's
manifest (SAM template, function.json files, service.yaml and triggers), so the comparison
says what the packages say. The manifest comes from the app's host build
(`<APP> --nube-manifest`).

--measure starts each target's binary on this machine as that cloud would: the artifacts
`cargo xtask package` wrote (it packages a target first when its artifact is missing; local:
`cargo build --release`). AWS runs against a Runtime API emulated here (ready: its first
`GET .../invocation/next`), Azure with FUNCTIONS_CUSTOMHANDLER_PORT, GCP and local with PORT
(ready: the port accepts a connection). No cloud is reached: DynamoDB and S3 connect lazily,
and the Cosmos DB account (read at start) and the Firestore channel get a loopback stand-in.
It reports exec-to-ready time (median of 5 starts) and idle memory (VmRSS, 1 s after ready),
or why a target could not be measured.

Bad input gets one line listing what exists: an unknown app, --function, --target or
--trigger.

The guide docs/one-app-three-clouds.md embeds `--format markdown` of the delivery-app
between <!-- compare:begin --> and <!-- compare:end -->, without sizes (they depend on what
is built), and docs/one-app-three-clouds.html is `--format html`; `cargo test -p xtask
compare` fails when they differ from what the generator writes. Regenerate both with
  cargo xtask compare --update-docs

Examples:
  cargo xtask compare
  cargo xtask compare --function make-thumbnails --target aws,gcp
  cargo xtask compare --trigger timer --format markdown
  cargo xtask compare --format html --output /tmp/compare.html
  cargo xtask compare --measure
  cargo xtask compare --update-docs";

/// The trigger kinds `--trigger` takes, as the manifest names them and in kebab case.
const TRIGGERS: [(&str, &str); 4] = [
    ("http", "http"),
    ("timer", "timer"),
    ("blob-created", "blobCreated"),
    ("document-created", "documentCreated"),
];

/// The manifest's name of a function's trigger kind.
fn kind(f: &FunctionManifest) -> &'static str {
    match f.trigger {
        TriggerManifest::Http { .. } => "http",
        TriggerManifest::Timer { .. } => "timer",
        TriggerManifest::BlobCreated { .. } => "blobCreated",
        TriggerManifest::DocumentCreated { .. } => "documentCreated",
    }
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal (`$COLUMNS` wide, else 160).
    Table,
    /// GitHub Markdown: a table per function, and one for the whole app.
    Markdown,
    /// One self-contained HTML page: the targets side by side, stacked on a phone.
    Html,
}

/// Options of `cargo xtask compare`.
#[derive(clap::Args)]
pub struct Args {
    /// The app to compare: a package under examples/.
    #[arg(long, value_name = "APP", default_value = DEFAULT_APP)]
    pub app: String,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only these functions (repeat, or separate with commas).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub function: Vec<String>,
    /// Only these targets: local, aws, azure, gcp (repeat, or separate with commas).
    #[arg(long, value_name = "TARGET", value_delimiter = ',')]
    pub target: Vec<String>,
    /// Only functions with this trigger: http, timer, blob-created, document-created.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub trigger: Vec<String>,
    /// Also start each target's binary here (packaging it when missing) and measure its
    /// start-up and idle memory.
    #[arg(long)]
    pub measure: bool,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Regenerate docs/one-app-three-clouds.md's tables and docs/one-app-three-clouds.html
    /// (the delivery-app, every target, without sizes).
    #[arg(long, conflicts_with_all = ["format", "function", "target", "trigger", "measure", "output"])]
    pub update_docs: bool,
    /// gcp: the Google Cloud project named in bucket names and the image.
    #[arg(long, value_name = "ID", default_value = crate::package::DEFAULT_PROJECT)]
    pub project: String,
    /// gcp: the region of the service, its triggers and jobs.
    #[arg(long, value_name = "REGION", default_value = crate::package::DEFAULT_REGION)]
    pub region: String,
    /// aws: the memory of each Lambda function, in MB.
    #[arg(long, value_name = "MB", default_value_t = crate::package::DEFAULT_MEMORY_MB)]
    pub memory_mb: u32,
}

/// What `--function`, `--target` and `--trigger` select, checked against the manifest.
struct Selection {
    targets: Vec<Target>,
    functions: Vec<String>,
    triggers: Vec<&'static str>,
}

impl Selection {
    /// Checks each name against what exists; the error is one line listing it.
    fn new(args: &Args, manifest: &Manifest) -> Result<Self, String> {
        let mut targets = args
            .target
            .iter()
            .map(|t| Target::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            targets = Target::ALL.to_vec();
        }
        targets.sort();
        targets.dedup();
        for f in &args.function {
            crate::samples::find_function(manifest, f)?;
        }
        let triggers = args
            .trigger
            .iter()
            .map(|t| {
                TRIGGERS
                    .iter()
                    .find(|(kebab, camel)| t == kebab || t == camel)
                    .map(|(_, camel)| *camel)
                    .ok_or_else(|| {
                        format!(
                            "unknown trigger {t:?} (there is: {})",
                            TRIGGERS.map(|t| t.0).join(", ")
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let selection = Selection {
            targets,
            functions: args.function.clone(),
            triggers,
        };
        if !manifest.functions.iter().any(|f| selection.keeps(f)) {
            let present: Vec<&str> = manifest.functions.iter().map(kind).collect();
            return Err(format!(
                "no function of {} matches --function/--trigger (its functions' triggers: {})",
                manifest.app,
                TRIGGERS
                    .iter()
                    .filter(|(_, camel)| present.contains(camel))
                    .map(|t| t.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(selection)
    }

    fn keeps(&self, f: &FunctionManifest) -> bool {
        (self.functions.is_empty() || self.functions.contains(&f.name))
            && (self.triggers.is_empty() || self.triggers.contains(&kind(f)))
    }
}

/// Runs `cargo xtask compare`.
pub fn run(args: Args) -> Result<(), String> {
    crate::manifest::check_app(&args.app)?;
    if args.update_docs && args.app != DEFAULT_APP {
        return Err(format!(
            "--update-docs writes the guide of {DEFAULT_APP}; leave out --app {}",
            args.app
        ));
    }
    // Any cloud feature the app has gives its package name, binary and target dir; a
    // missing one only matters for that target's --measure.
    let packages: Vec<_> = [Target::Aws, Target::Azure, Target::Gcp]
        .into_iter()
        .map(|t| {
            (
                t,
                app_package(&args.app, t.name(), "see `cargo xtask package --help`"),
            )
        })
        .collect();
    let package = packages
        .iter()
        .find_map(|(_, p)| p.as_ref().ok())
        .ok_or_else(|| {
            packages
                .iter()
                .find_map(|(_, p)| p.as_ref().err())
                .cloned()
                .unwrap_or_default()
        })?;
    let manifest = host_manifest(&package.name, &package.bin)?;
    if args.update_docs {
        return guide::update(&manifest);
    }
    let selection = Selection::new(&args, &manifest)?;
    let deployment = Deployment {
        project: args.project.clone(),
        region: args.region.clone(),
        memory_mb: args.memory_mb,
    };
    let mut comparison = model::compare(
        &manifest,
        &selection.targets,
        |f| selection.keeps(f),
        &deployment,
        Sizes::FromDisk,
        &package.target_dir,
        &package.bin,
    );
    if args.measure {
        let measured = selection
            .targets
            .iter()
            .map(|&t| {
                let result = match packages.iter().find(|(p, _)| *p == t) {
                    Some((_, Err(e))) => Err(e.clone()),
                    _ => measure::measure(t, &args.app, package, &manifest),
                };
                (t, result)
            })
            .collect::<Vec<_>>();
        comparison.app_rows.extend(measure::rows(&measured));
    }
    let text = match args.format {
        Format::Table => render::table(&comparison, render::terminal_width()),
        Format::Markdown => render::markdown(&comparison),
        Format::Html => render::html(&comparison),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(line: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("compare").chain(line.iter().copied()))
            .unwrap()
            .args
    }

    fn manifest() -> Manifest {
        delivery_app::app().manifest()
    }

    #[test]
    fn compare_unknown_names_list_what_exists() {
        let m = manifest();
        let err = Selection::new(&args(&["--target", "aws,heroku"]), &m)
            .err()
            .unwrap();
        assert_eq!(
            err,
            "unknown target \"heroku\" (there is: local, aws, azure, gcp)"
        );
        let err = Selection::new(&args(&["--function", "thumbs"]), &m)
            .err()
            .unwrap();
        assert!(
            err.starts_with("delivery-app has no function \"thumbs\" (there is: todos, images-api, make-thumbnails,"),
            "{err}"
        );
        let err = Selection::new(&args(&["--trigger", "queue"]), &m)
            .err()
            .unwrap();
        assert_eq!(
            err,
            "unknown trigger \"queue\" (there is: http, timer, blob-created, document-created)"
        );
        let err = Selection::new(&args(&["--function", "todos", "--trigger", "timer"]), &m)
            .err()
            .unwrap();
        assert!(err.contains("no function of delivery-app matches"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        let err = crate::manifest::check_app("shop").unwrap_err();
        assert!(err.contains("delivery-app"), "{err}");
    }

    #[test]
    fn compare_selects_functions_targets_and_triggers() {
        let m = manifest();
        let s = Selection::new(
            &args(&["--target", "gcp,aws", "--trigger", "blob-created,timer"]),
            &m,
        )
        .unwrap();
        assert_eq!(s.targets, [Target::Aws, Target::Gcp]);
        let kept: Vec<&str> = m
            .functions
            .iter()
            .filter(|f| s.keeps(f))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(kept, ["make-thumbnails", "cleanup-expired-orders"]);
        // The format is clap's: an unknown one lists the values.
        let err = Cli::try_parse_from(["compare", "--format", "pdf"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("table, markdown, html"), "{err}");
    }
}
