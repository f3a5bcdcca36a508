//! `cargo xtask package`: turns an example app into what a cloud deploys.
//!
//! - `aws.rs`: the AWS Lambda steps (cross-build, glibc check, `bootstrap.zip`, template),
//!   and the steps every target shares (manifest, build arguments, Rust std);
//! - `sam.rs`: the SAM template rendered from the app's manifest;
//! - `azure.rs`: the Azure Functions app (host.json, function.json files, zip);
//! - `gcp.rs`: the Cloud Run service (static binary, Dockerfile, service.yaml, and
//!   service-events.yaml for the events of an app with public HTTP, triggers);
//! - `elf.rs`: reads a binary's CPU, glibc needs and whether it is static.

pub(crate) mod aws;
pub(crate) mod azure;
mod elf;
pub(crate) mod gcp;
pub(crate) mod sam;

use std::path::{Path, PathBuf};

/// The targets `--target` names.
const TARGETS: &[&str] = &["aws", "azure", "gcp"];

/// The Google Cloud project when none is given (`--project`).
pub(crate) const DEFAULT_PROJECT: &str = "my-project";

/// The Google Cloud region when none is given (`--region`).
pub(crate) const DEFAULT_REGION: &str = "europe-west1";

/// The memory of each Lambda function when none is given (`--memory-mb`), in MB.
pub(crate) const DEFAULT_MEMORY_MB: u32 = 256;

/// The directory `cargo xtask package --target <cloud>` writes `app` into, under cargo's
/// target directory: `nube/<cloud>/<app>`.
pub(crate) fn out_dir(target_dir: &Path, cloud: &str, app: &str) -> PathBuf {
    target_dir.join("nube").join(cloud).join(app)
}

/// What `cargo xtask package --target <cloud>` writes for the cloud to deploy, `app`'s
/// binary being `bin`: aws, `bootstrap.zip` in [`out_dir`]; azure, `<app>.zip` in it
/// (zip deploy); gcp, the static executable `<bin>` in it.
pub(crate) fn artifact(target_dir: &Path, cloud: &str, app: &str, bin: &str) -> PathBuf {
    let out = out_dir(target_dir, cloud, app);
    match cloud {
        "aws" => out.join(sam::CODE_URI),
        "azure" => out.join(format!("{app}.zip")),
        "gcp" => out.join(bin),
        other => unreachable!("`cargo xtask package` has no target {other}"),
    }
}

/// Options of `cargo xtask package`.
#[derive(clap::Args)]
pub struct Args {
    /// Where the app will run: `aws` (AWS Lambda: bootstrap.zip and a SAM template),
    /// `azure` (Azure Functions: a custom-handler function app and its zip), `gcp`
    /// (Cloud Run: a static binary, Dockerfile, service.yaml (and service-events.yaml),
    /// triggers), `all`.
    #[arg(long, value_name = "TARGET")]
    pub target: String,
    /// The app to package: a package under examples/.
    #[arg(long, value_name = "APP", default_value = "delivery-app")]
    pub app: String,
    /// aws: the CPU the functions run on (`arm64` needs the Rust standard library for
    /// aarch64-unknown-linux-gnu: `rustup target add aarch64-unknown-linux-gnu`).
    /// Azure and Cloud Run packages are x86_64.
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    pub arch: Arch,
    /// aws: memory of each function, in MB; Lambda gives CPU in proportion (128-10240).
    #[arg(long, value_name = "MB", default_value_t = DEFAULT_MEMORY_MB,
          value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub memory_mb: u32,
    /// gcp: the Google Cloud project (bucket names and the image path include it).
    #[arg(
        long,
        value_name = "ID",
        env = "GOOGLE_CLOUD_PROJECT",
        default_value = DEFAULT_PROJECT
    )]
    pub project: String,
    /// gcp: the region of the service, its triggers and jobs.
    #[arg(long, value_name = "REGION", default_value = DEFAULT_REGION)]
    pub region: String,
    /// gcp: the service account the services run as and Eventarc and Cloud Scheduler
    /// call them with (without it: the project's default compute account, which
    /// deploy.sh looks up).
    #[arg(long, value_name = "EMAIL")]
    pub service_account: Option<String>,
}

/// A Lambda CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// Intel/AMD 64-bit.
    #[value(name = "x86_64", alias = "x86-64", alias = "amd64")]
    X86_64,
    /// Graviton (64-bit ARM): about 20% cheaper per GB-second.
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl Arch {
    /// Lambda's name for it (`Architectures` in the template).
    pub fn lambda(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// `object`'s name for the ELF machine.
    fn elf_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "X86_64",
            Arch::Arm64 => "Aarch64",
        }
    }

    /// Whether binaries for it run on the machine running xtask.
    pub(crate) fn is_host(self) -> bool {
        match self {
            Arch::X86_64 => cfg!(all(target_arch = "x86_64", target_os = "linux")),
            Arch::Arm64 => cfg!(all(target_arch = "aarch64", target_os = "linux")),
        }
    }
}

/// The long help of `cargo xtask package`.
pub const LONG_ABOUT: &str = "\
Build an example app for a cloud and write what that cloud deploys.

For --target aws, into target/nube/aws/<APP>/:
  bootstrap.zip       the app as one Lambda `bootstrap` (every function; _HANDLER picks
                      one), built with the `release-small` profile and the app's `aws`
                      feature instead of its default ones (so that what only the local
                      runtime needs, behind a default feature like the delivery-app's
                      `local`, stays out), linked against glibc 2.34 so that it runs on
                      provided.al2023
  template.yaml       a SAM template from the app's manifest: a function per nube
                      function, one HTTP API for the routes, EventBridge schedules, S3 and
                      DynamoDB stream events, a table per collection, a bucket per bucket
  nube-manifest.json  the manifest it was rendered from

Steps: read the manifest from the host build (`<APP> --nube-manifest`), render the template
(an unsupported schedule or timeout fails here, in seconds), install the pinned tools once
(zig from PyPI into .tools/venv, cargo-zigbuild into .tools/cargo), cross-build the
bootstrap with `cargo zigbuild`, check its glibc needs (GLIBC_2.34 at most), zip it, write
the template and check it with cfn-lint, as written and after SAM's own transform (which is
where dependency cycles show).

Then deploy with the SAM CLI (`sam`, also in .tools/venv/bin):
  cd target/nube/aws/delivery-app && sam deploy --guided

For --target azure, into target/nube/azure/<APP>/:
  host.json           custom handler: the executable, HTTP forwarding, extension bundle
  <Function>/function.json
                      one per function: httpTrigger (route, methods, authLevel),
                      timerTrigger (NCRONTAB), blobTrigger, cosmosDBTrigger (extension v4)
  <APP>               the executable (`azure` feature, glibc 2.31 at most)
  local.settings.json settings for `func start` (FUNCTIONS_WORKER_RUNTIME=Custom)
  <APP>.zip           the function app for zip deploy (no settings, no manifest)
  .funcignore         what `func azure functionapp publish` leaves out (the zip)

For --target gcp, into target/nube/gcp/<APP>/:
  <APP>               a static executable (`gcp` feature, x86_64-unknown-linux-musl)
  Dockerfile          the executable on distroless `static`, as a non-root user
  service.yaml        the Cloud Run / Knative service
  service-events.yaml when HTTP is public (`anonymous_http`) and the app has event
                      functions: a private service of their own
  triggers.yaml       Eventarc triggers and Cloud Scheduler jobs, as YAML
  deploy.sh           the same, as gcloud commands

Examples:
  cargo xtask package --target aws
  cargo xtask package --target aws --app delivery-app --arch arm64 --memory-mb 512
  cargo xtask package --target azure
  cargo xtask package --target gcp --project my-project --region europe-west1
  cargo xtask package --target gcp --project my-project --service-account nube@my-project.iam.gserviceaccount.com
  cargo xtask package --target all";

/// Writes a zip of `entries` (`(path in the zip, contents, executable)`) to `path`:
/// each deflated at level 9, with mode 755 when executable and 644 otherwise, and a
/// fixed date, so that the same files give the same bytes.
pub(crate) fn write_zip<'a>(
    path: &Path,
    entries: impl IntoIterator<Item = (&'a str, &'a [u8], bool)>,
) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    for (name, contents, executable) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(9))
            .unix_permissions(if executable { 0o755 } else { 0o644 })
            .last_modified_time(zip::DateTime::DEFAULT);
        zip.start_file(name, options).map_err(|e| fail(&e))?;
        zip.write_all(contents).map_err(|e| fail(&e))?;
    }
    zip.finish()
        .map_err(|e| fail(&e))?
        .flush()
        .map_err(|e| fail(&e))
}

/// Runs `cargo xtask package`.
pub fn run(args: Args) -> Result<(), String> {
    let targets = selected_targets(&args.target)?;
    crate::manifest::check_app(&args.app)?;
    for target in targets {
        match target {
            "aws" => aws::package(&args.app, args.arch, args.memory_mb)?,
            "azure" => azure::package(&args.app)?,
            "gcp" => gcp::package(
                &args.app,
                &args.project,
                &args.region,
                args.service_account.as_deref(),
            )?,
            other => unreachable!("target {other} is checked above"),
        }
    }
    Ok(())
}

/// The targets `--target` selects, or a one-line error saying what exists.
fn selected_targets(target: &str) -> Result<Vec<&'static str>, String> {
    match TARGETS.iter().find(|t| **t == target) {
        Some(name) => Ok(vec![name]),
        None if target == "all" => Ok(TARGETS.to_vec()),
        None => Err(format!(
            "unknown target {target:?} (there is: {}, all)",
            TARGETS.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_say_what_exists() {
        assert_eq!(selected_targets("aws").unwrap(), ["aws"]);
        assert_eq!(selected_targets("azure").unwrap(), ["azure"]);
        assert_eq!(selected_targets("all").unwrap(), ["aws", "azure", "gcp"]);
        assert_eq!(
            selected_targets("aws-lambda").unwrap_err(),
            "unknown target \"aws-lambda\" (there is: aws, azure, gcp, all)"
        );
    }
}
