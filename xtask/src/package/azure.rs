//! `cargo xtask package --target azure`: the app as an Azure Functions custom-handler
//! function app, in `target/nube/azure/<app>/`.
//!
//! The executable is cross-built with `cargo zigbuild` against glibc 2.31 (Debian 11,
//! the oldest base of the Functions host's Linux images), so it starts on every Linux
//! plan. `host.json`, the `function.json` files and `local.settings.json` come from
//! `nube_azure::descriptors`, rendered from the app's manifest.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::Arch;
use super::aws::{
    PROFILE, app_package, check_declares, count, cross_build, ensure_build_tools, host_manifest,
    pretty, write,
};
use super::elf::{self, GlibcVersion};
use crate::root;

/// The newest glibc the executable may need (Debian 11).
pub const MAX_GLIBC: GlibcVersion = GlibcVersion(2, 31, 0);

/// The longest `functionTimeout` the Consumption plan's host accepts (`hh:mm:ss`, which
/// compares as text).
const CONSUMPTION_TIMEOUT_LIMIT: &str = "00:10:00";

/// The cargo feature an app enables to run on Azure Functions.
pub(crate) const FEATURE: &str = "azure";

const STEPS: usize = 6;

fn step(n: usize, what: impl std::fmt::Display) {
    eprintln!("[{n}/{STEPS}] {what}");
}

/// What goes in the function app: `(path in the app, contents, executable)`.
pub struct AppFiles(pub Vec<(String, Vec<u8>, bool)>);

/// The function app's descriptors.
pub struct Descriptors {
    /// `host.json`.
    pub host: Value,
    /// Each Azure function's name and `function.json`.
    pub functions: Vec<(String, Value)>,
    /// `local.settings.json`.
    pub settings: Value,
}

/// The function app's descriptors for `manifest`, with the executable at `executable`.
pub fn descriptors(
    manifest: &nube::manifest::Manifest,
    executable: &str,
) -> Result<Descriptors, String> {
    Ok(Descriptors {
        host: nube_azure::descriptors::host_json(manifest, executable),
        functions: nube_azure::descriptors::function_jsons(manifest).map_err(|e| e.to_string())?,
        settings: nube_azure::descriptors::local_settings_json(manifest),
    })
}

/// Packages `app` for Azure Functions.
pub fn package(app: &str) -> Result<(), String> {
    let started = Instant::now();
    let package = app_package(
        app,
        FEATURE,
        "add `azure = [\"dep:nube-azure\", \"nube-azure/cosmos\", \"nube-azure/blob\"]` and call `nube_azure::run` in its main",
    )?;
    let (bin, target_dir) = (&package.bin, &package.target_dir);

    step(
        1,
        format_args!("Reading {app}'s manifest (`{app} --nube-manifest`, host build)"),
    );
    let manifest = host_manifest(&package.name, &package.bin)?;

    step(
        2,
        "Rendering host.json, function.json files, local.settings.json",
    );
    let Descriptors {
        host,
        functions,
        settings,
    } = descriptors(&manifest, bin)?;
    if let Some(timeout) = host["functionTimeout"].as_str()
        && timeout > CONSUMPTION_TIMEOUT_LIMIT
    {
        eprintln!(
            "warning: host.json's functionTimeout is {timeout} (the app's longest function timeout and a second); the Consumption plan allows at most {CONSUMPTION_TIMEOUT_LIMIT} and will not start the app: deploy to a Premium or Dedicated plan, or lower the timeout"
        );
    }

    step(
        3,
        "Checking the build tools (Rust std, zig, cargo-zigbuild)",
    );
    let arch = Arch::X86_64;
    let build_tools = ensure_build_tools(arch.triple())?;

    let zig_target = format!("{}.{}.{}", arch.triple(), MAX_GLIBC.0, MAX_GLIBC.1);
    step(
        4,
        format_args!(
            "Building the custom handler: {app} with feature `{FEATURE}` (no default features), profile {PROFILE}, target {zig_target}"
        ),
    );
    let (binary, bytes) = cross_build(&build_tools, &package, FEATURE, arch.triple(), &zig_target)?;
    let needs = elf::needs(&bytes).map_err(|e| format!("the executable is {e}"))?;
    if let Some(max) = needs.max_glibc().filter(|&m| m > MAX_GLIBC) {
        return Err(format!(
            "the executable needs {max}, but the Functions host's oldest Linux image has {MAX_GLIBC}; was it linked by zig with the `.2.31` suffix?"
        ));
    }
    check_declares(&binary, arch, &manifest, app, &package)?;

    let out = super::out_dir(target_dir, "azure", app);
    step(5, format_args!("Writing {}", out.display()));
    if out.exists() {
        // Functions of an earlier package that the app no longer has must not linger.
        std::fs::remove_dir_all(&out)
            .map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut files = AppFiles(vec![(
        "host.json".to_owned(),
        pretty(&host).into_bytes(),
        false,
    )]);
    for (function, descriptor) in &functions {
        files.0.push((
            format!("{function}/function.json"),
            pretty(descriptor).into_bytes(),
            false,
        ));
    }
    files.0.push((bin.clone(), bytes.clone(), true));
    for (path, contents, executable) in &files.0 {
        let path = out.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
        }
    }
    // Settings are the developer's (`func start`); the zip deploys without them.
    write(&out.join("local.settings.json"), &pretty(&settings))?;
    write(
        &out.join("nube-manifest.json"),
        &pretty(&serde_json::to_value(&manifest).expect("a manifest is JSON")),
    )?;
    let zip_path = super::artifact(target_dir, "azure", app, bin);
    write_app_zip(&zip_path, &files)?;
    // Where earlier versions wrote the zip: a stale copy there would deploy old code.
    let _ = std::fs::remove_file(out.with_file_name(format!("{app}.zip")));
    // `func azure functionapp publish` from the folder would upload the zip too.
    let zip_name = zip_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    write(
        &out.join(".funcignore"),
        &format!(
            "{}\nnube-manifest.json\nlocal.settings.json\n",
            zip_name.unwrap_or_default()
        ),
    )?;

    step(6, "Checking the function app");
    check_app(&out, bin, &functions)?;

    let relative = out.strip_prefix(root()).unwrap_or(&out).to_path_buf();
    let zip_size = std::fs::metadata(&zip_path).map(|m| m.len()).unwrap_or(0);
    let secs = started.elapsed().as_secs();
    eprintln!(
        "    Finished packaging {app} for Azure Functions in {}m {:02}s",
        secs / 60,
        secs % 60
    );
    eprintln!(
        "      {}  host.json, {}, the executable {bin} ({} bytes), local.settings.json",
        relative.display(),
        count(functions.len(), "function.json"),
        bytes.len()
    );
    eprintln!(
        "      {}  {zip_size} bytes (zip deploy)",
        zip_path.strip_prefix(root()).unwrap_or(&zip_path).display()
    );
    eprintln!(
        "    Deploy with the Azure CLI:\n      az functionapp deployment source config-zip -g <group> -n <function app> --src {}",
        zip_path.strip_prefix(root()).unwrap_or(&zip_path).display()
    );
    Ok(())
}

/// Checks what the host will read: `host.json` names an executable that is there, and
/// every function folder has a `function.json` with exactly one trigger binding.
fn check_app(out: &Path, bin: &str, functions: &[(String, Value)]) -> Result<(), String> {
    let host: Value = read_json(&out.join("host.json"))?;
    let executable = host
        .pointer("/customHandler/description/defaultExecutablePath")
        .and_then(Value::as_str)
        .ok_or("host.json has no customHandler.description.defaultExecutablePath")?;
    if executable != bin || !out.join(executable).is_file() {
        return Err(format!(
            "host.json names the executable {executable:?}, which is not in {}",
            out.display()
        ));
    }
    for (function, _) in functions {
        let descriptor = read_json(&out.join(function).join("function.json"))?;
        let triggers = descriptor["bindings"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter(|b| b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")))
                    .count()
            })
            .unwrap_or(0);
        if triggers != 1 {
            return Err(format!(
                "{function}/function.json has {triggers} trigger bindings; the host needs exactly one"
            ));
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// Writes the zip-deploy archive: every file of the function app at its path, the
/// executable with mode 755, deflated, with fixed dates (same input, same bytes).
pub fn write_app_zip(path: &Path, files: &AppFiles) -> Result<(), String> {
    super::write_zip(
        path,
        files
            .0
            .iter()
            .map(|(name, contents, executable)| (name.as_str(), contents.as_slice(), *executable)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_delivery_app_gets_a_function_folder_per_function() {
        let manifest = delivery_app::app().manifest();
        let Descriptors {
            host,
            functions,
            settings,
        } = descriptors(&manifest, "delivery-app").unwrap();
        assert_eq!(host["version"], "2.0");
        assert_eq!(
            host["customHandler"]["description"]["defaultExecutablePath"],
            "delivery-app"
        );
        // images-api serves /uploads/... and /images/...: one Azure function each.
        let names: Vec<&str> = functions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "todos",
                "images-api-uploads",
                "images-api-images",
                "make-thumbnails",
                "orders-api-orders",
                "orders-api-users",
                "orders-read-model",
                "cleanup-expired-orders"
            ]
        );
        for (_, descriptor) in &functions {
            assert!(descriptor["bindings"].is_array(), "{descriptor}");
        }
        assert_eq!(settings["Values"]["FUNCTIONS_WORKER_RUNTIME"], "Custom");
    }

    #[test]
    fn the_zip_keeps_paths_and_the_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.zip");
        let files = AppFiles(vec![
            ("host.json".into(), b"{}".to_vec(), false),
            (
                "api/function.json".into(),
                b"{\"bindings\":[]}".to_vec(),
                false,
            ),
            ("app".into(), b"\x7fELF...".to_vec(), true),
        ]);
        write_app_zip(&path, &files).unwrap();
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(zip.len(), 3);
        let mut entry = zip.by_name("app").unwrap();
        assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o755);
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"\x7fELF...");
        drop(entry);
        assert_eq!(
            zip.by_name("api/function.json")
                .unwrap()
                .unix_mode()
                .unwrap()
                & 0o777,
            0o644
        );
        let first = std::fs::read(&path).unwrap();
        write_app_zip(&path, &files).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }
}
