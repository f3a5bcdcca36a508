//! `cargo xtask package --target gcp`: the app as one Cloud Run service (two when its
//! HTTP is public and it has event functions: those go on a private one), in
//! `target/nube/gcp/<app>/`.
//!
//! The executable is a static musl binary (cross-built with `cargo zigbuild`), so the
//! image is the binary on distroless `static` and nothing else. The service manifest,
//! the Eventarc triggers and Cloud Scheduler jobs (as YAML and as a `deploy.sh` of
//! `gcloud` commands) and the Dockerfile come from `nube_gcp::descriptors`, rendered
//! from the app's manifest. The same `service.yaml` runs on any Knative cluster.

use std::process::Command;
use std::time::Instant;

use super::aws::{
    PROFILE, app_package, check_declares, cross_build, ensure_build_tools, host_manifest, pretty,
    write,
};
use super::elf;
use crate::{root, run_cmd};
use nube_gcp::descriptors::{self, Options};

/// The cargo feature an app enables to run on Cloud Run.
pub(crate) const FEATURE: &str = "gcp";

/// The static target the executable is built for.
pub const TRIPLE: &str = "x86_64-unknown-linux-musl";

const STEPS: usize = 6;

fn step(n: usize, what: impl std::fmt::Display) {
    eprintln!("[{n}/{STEPS}] {what}");
}

/// The file of the events' own service, written only when the app has one.
pub const EVENTS_SERVICE_FILE: &str = "service-events.yaml";

/// The rendered files of the service: `(file name, contents)`.
pub fn render(
    manifest: &nube::manifest::Manifest,
    options: &Options,
    binary: &str,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut files = vec![(
        "service.yaml",
        descriptors::render_service(manifest, options)?,
    )];
    if let Some(events) = descriptors::render_events_service(manifest, options)? {
        files.push((EVENTS_SERVICE_FILE, events));
    }
    files.extend([
        (
            "triggers.yaml",
            descriptors::render_triggers_yaml(manifest, options)?,
        ),
        (
            "deploy.sh",
            descriptors::render_deploy_script(manifest, options)?,
        ),
        ("Dockerfile", descriptors::render_dockerfile(binary)),
    ]);
    Ok(files)
}

/// The descriptors' options for `app` in `project` and `region`, with the image
/// `<region>-docker.pkg.dev/<project>/nube/<app>:latest`: what `compare` shows and
/// what `package` checks before building; the package's image is tagged
/// [`image_tag`] instead.
pub(crate) fn options(app: &str, project: &str, region: &str) -> Options {
    Options::new(project, region, image(app, project, region, "latest"))
}

/// The image of `app` in the project's Artifact Registry, tagged `tag`.
fn image(app: &str, project: &str, region: &str, tag: &str) -> String {
    format!("{region}-docker.pkg.dev/{project}/nube/{app}:{tag}")
}

/// The image's tag for the executable `bytes`: the first 12 hex digits of their
/// SHA-256. `service.yaml` then changes exactly when the code does, and
/// `gcloud run services replace` rolls out a new revision; with a fixed tag such as
/// `latest`, an unchanged file would leave the old image running.
pub fn image_tag(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Packages `app` for Cloud Run in `project` and `region`, its services running as
/// `service_account` (the default compute account when `None`).
pub fn package(
    app: &str,
    project: &str,
    region: &str,
    service_account: Option<&str>,
) -> Result<(), String> {
    if project == super::DEFAULT_PROJECT {
        eprintln!(
            "warning: no --project (or GOOGLE_CLOUD_PROJECT) was given, so bucket names, the image path and deploy.sh name the placeholder project {project:?}; package again with --project <id> before deploying"
        );
    }
    let started = Instant::now();
    let package = app_package(
        app,
        FEATURE,
        "add `gcp = [\"dep:nube-gcp\", \"nube-gcp/firestore\", \"nube-gcp/gcs\"]` and call `nube_gcp::run` in its main",
    )?;
    let (bin, target_dir) = (&package.bin, &package.target_dir);

    step(
        1,
        format_args!("Reading {app}'s manifest (`{app} --nube-manifest`, host build)"),
    );
    let manifest = host_manifest(&package.name, &package.bin)?;

    step(
        2,
        "Rendering service.yaml, triggers.yaml, deploy.sh, Dockerfile (checked now, written after the build)",
    );
    let mut options = options(app, project, region);
    options.service_account = service_account.map(str::to_owned);
    render(&manifest, &options, bin)?;

    step(
        3,
        "Checking the build tools (Rust std for musl, zig, cargo-zigbuild)",
    );
    let build_tools = ensure_build_tools(TRIPLE)?;

    step(
        4,
        format_args!(
            "Building the service: {app} with feature `{FEATURE}` (no default features), profile {PROFILE}, target {TRIPLE} (static)"
        ),
    );
    let (binary, bytes) = cross_build(&build_tools, &package, FEATURE, TRIPLE, TRIPLE)?;
    let needs = elf::needs(&bytes).map_err(|e| format!("the executable is {e}"))?;
    if needs.dynamic {
        return Err(format!(
            "{} is dynamically linked; distroless `static` has no loader to run it",
            binary.display()
        ));
    }
    check_declares(&binary, super::Arch::X86_64, &manifest, app, &package)?;

    let tag = image_tag(&bytes);
    options.image = image(app, project, region, &tag);
    let files = render(&manifest, &options, bin)?;

    let out = super::out_dir(target_dir, "gcp", app);
    step(
        5,
        format_args!("Writing {} (image tag {tag})", out.display()),
    );
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let exe = super::artifact(target_dir, "gcp", app, bin);
    std::fs::write(&exe, &bytes).map_err(|e| format!("cannot write {}: {e}", exe.display()))?;
    set_executable(&exe)?;
    for (file, text) in &files {
        write(&out.join(file), text)?;
    }
    let splits = descriptors::splits_events(&manifest);
    if !splits {
        // From an earlier package of the app, when its HTTP was public.
        let _ = std::fs::remove_file(out.join(EVENTS_SERVICE_FILE));
    }
    set_executable(&out.join("deploy.sh"))?;
    write(
        &out.join("nube-manifest.json"),
        &pretty(&serde_json::to_value(&manifest).expect("a manifest is JSON")),
    )?;

    step(
        6,
        "Checking the deploy script's syntax (`bash -n deploy.sh`)",
    );
    run_cmd(Command::new("bash").arg("-n").arg(out.join("deploy.sh")))
        .map_err(|e| format!("{e}\n  deploy.sh is not valid shell"))?;

    let relative = out.strip_prefix(root()).unwrap_or(&out).to_path_buf();
    let secs = started.elapsed().as_secs();
    eprintln!(
        "    Finished packaging {app} for Cloud Run in {}m {:02}s",
        secs / 60,
        secs % 60
    );
    let wired = manifest
        .functions
        .iter()
        .filter(|f| !matches!(f.trigger, nube::manifest::TriggerManifest::Http { .. }))
        .count();
    let services = if splits {
        format!("service.yaml (public HTTP), {EVENTS_SERVICE_FILE} (private events)")
    } else {
        "service.yaml".to_owned()
    };
    eprintln!(
        "      {}  {bin} (static, {} bytes), Dockerfile, {services}, triggers.yaml and deploy.sh ({wired} Eventarc triggers and Scheduler jobs)",
        relative.display(),
        bytes.len(),
    );
    eprintln!(
        "    Deploy with gcloud (it enables the APIs, builds the image {} with Cloud Build, then deploys):\n      {}/deploy.sh",
        options.image,
        relative.display(),
    );
    Ok(())
}

fn set_executable(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make {} executable: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_tag_follows_the_code() {
        assert_eq!(image_tag(b""), "e3b0c44298fc");
        assert_ne!(image_tag(b"one build"), image_tag(b"another build"));
    }

    #[test]
    fn the_delivery_app_renders_every_file_and_a_valid_script() {
        let manifest = delivery_app::app().manifest();
        let options = Options::new("nube-demo", "europe-west1", "img:latest");
        let files = render(&manifest, &options, "delivery-app").unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "service.yaml",
                EVENTS_SERVICE_FILE,
                "triggers.yaml",
                "deploy.sh",
                "Dockerfile"
            ],
            "the delivery app's HTTP is public, so its events get a service of their own"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("deploy.sh");
        std::fs::write(&script, &files[3].1).unwrap();
        let status = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success(), "bash -n deploy.sh: {status}");
        assert!(files[4].1.contains("COPY"), "{}", files[4].1);
        assert!(
            files[0].1.contains("serving.knative.dev/v1"),
            "{}",
            files[0].1
        );
    }
}
