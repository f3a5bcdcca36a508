//! Where an app runs: the local runtime or one of the three clouds. `cargo xtask compare`
//! shows one column per target; `cargo xtask invoke --target` runs a function on one.

use crate::samples::Provider;

/// A place an app runs, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The local runtime (`nube_local`), with its embedded stores.
    Local,
    /// AWS Lambda (`nube_aws`).
    Aws,
    /// Azure Functions (`nube_azure`).
    Azure,
    /// Google Cloud Run (`nube_gcp`).
    Gcp,
}

impl Target {
    /// Every target, in column order.
    pub const ALL: [Target; 4] = [Target::Local, Target::Aws, Target::Azure, Target::Gcp];

    /// Its name on the command line (`--target`), and its cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Aws => "aws",
            Target::Azure => "azure",
            Target::Gcp => "gcp",
        }
    }

    /// Its column heading.
    pub fn title(self) -> &'static str {
        match self {
            Target::Local => "Local (nube-local)",
            Target::Aws => "AWS Lambda",
            Target::Azure => "Azure Functions",
            Target::Gcp => "Google Cloud Run",
        }
    }

    /// The cloud whose payloads the target takes; the local runtime takes Cloud Run's
    /// plain HTTP requests.
    pub fn provider(self) -> Provider {
        match self {
            Target::Aws => Provider::Aws,
            Target::Azure => Provider::Azure,
            Target::Gcp | Target::Local => Provider::Gcp,
        }
    }

    /// The target named `name` (in any case), or a one-line error listing those there
    /// are.
    pub fn parse(name: &str) -> Result<Target, String> {
        crate::one_named("target", name, &Target::ALL, Target::name)
    }
}
