//! The app's declaration as JSON: what the packager and the comparison tools read.
//!
//! A built app binary prints it and exits when run with `--nube-manifest` or with
//! `NUBE_MANIFEST=1` in its environment (every runtime checks [`requested`] first).

use serde::{Deserialize, Serialize};

use crate::app::{App, Settings, Trigger};
use crate::http::Route;

/// The manifest format version.
pub const FORMAT: u32 = 1;

/// An app's declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The nube version that built the binary.
    pub nube_version: String,
    /// The app's name.
    pub app: String,
    /// Its functions, in declaration order.
    pub functions: Vec<FunctionManifest>,
    /// Declared document collections.
    pub collections: Vec<String>,
    /// Declared buckets.
    pub buckets: Vec<String>,
    /// App-wide settings.
    pub settings: Settings,
}

/// One function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionManifest {
    /// Its name.
    pub name: String,
    /// What starts it.
    pub trigger: TriggerManifest,
    /// Its timeout in seconds.
    pub timeout_seconds: f64,
    /// The collections and buckets it declared it uses, its trigger's own included
    /// ([`crate::App::function_collections`]); absent when it declared nothing and
    /// reaches all of the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<UsesManifest>,
}

/// What one function uses, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsesManifest {
    /// Collections, in name order.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Buckets, in name order.
    #[serde(default)]
    pub buckets: Vec<String>,
}

impl FunctionManifest {
    /// Whether the function may use collection `name`: any when it declared nothing,
    /// else those it declared and its trigger's.
    pub fn may_use_collection(&self, name: &str) -> bool {
        matches!(&self.trigger, TriggerManifest::DocumentCreated { collection } if collection == name)
            || self
                .uses
                .as_ref()
                .is_none_or(|u| u.collections.iter().any(|c| c == name))
    }

    /// Whether the function may use bucket `name`: any when it declared nothing, else
    /// those it declared and its trigger's.
    pub fn may_use_bucket(&self, name: &str) -> bool {
        matches!(&self.trigger, TriggerManifest::BlobCreated { bucket, .. } if bucket == name)
            || self
                .uses
                .as_ref()
                .is_none_or(|u| u.buckets.iter().any(|b| b == name))
    }
}

/// A trigger, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TriggerManifest {
    /// HTTP with its routes.
    Http {
        /// Routes served.
        routes: Vec<Route>,
    },
    /// A schedule, in nube's neutral syntax.
    Timer {
        /// The schedule text ([`crate::Schedule`] parses it).
        schedule: String,
    },
    /// Objects created in a bucket.
    #[serde(rename_all = "camelCase")]
    BlobCreated {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// Documents created in a collection.
    #[serde(rename_all = "camelCase")]
    DocumentCreated {
        /// Collection.
        collection: String,
    },
}

impl App {
    /// The app's manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            format: FORMAT,
            nube_version: env!("CARGO_PKG_VERSION").to_owned(),
            app: self.name().to_owned(),
            functions: self
                .functions()
                .iter()
                .map(|f| FunctionManifest {
                    name: f.name().to_owned(),
                    timeout_seconds: self.timeout_of(f).as_secs_f64(),
                    uses: f.uses().map(|u| UsesManifest {
                        collections: u.collections().map(str::to_owned).collect(),
                        buckets: u.buckets().map(str::to_owned).collect(),
                    }),
                    trigger: match f.trigger() {
                        Trigger::Http(r) => TriggerManifest::Http {
                            routes: r.declared().to_vec(),
                        },
                        Trigger::Timer(s) => TriggerManifest::Timer {
                            schedule: s.to_string(),
                        },
                        Trigger::BlobCreated { bucket, prefix } => TriggerManifest::BlobCreated {
                            bucket: bucket.clone(),
                            prefix: prefix.clone(),
                        },
                        Trigger::DocumentCreated { collection } => {
                            TriggerManifest::DocumentCreated {
                                collection: collection.clone(),
                            }
                        }
                    },
                })
                .collect(),
            collections: self.collections().map(str::to_owned).collect(),
            buckets: self.buckets().map(str::to_owned).collect(),
            settings: self.settings().clone(),
        }
    }
}

/// The environment variable through which packagers tell a runtime the physical
/// name of a logical resource: `prefix`, `_`, and the logical name in upper case with
/// every character other than a letter or digit as `_`.
///
/// ```
/// assert_eq!(nube::manifest::env_var("NUBE_TABLE", "order-events"), "NUBE_TABLE_ORDER_EVENTS");
/// ```
pub fn env_var(prefix: &str, logical: &str) -> String {
    let name: String = logical
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}_{name}")
}

/// Whether this process was asked to print its manifest (`--nube-manifest` argument
/// or `NUBE_MANIFEST=1`).
pub fn requested() -> bool {
    std::env::args().skip(1).any(|a| a == "--nube-manifest")
        || std::env::var("NUBE_MANIFEST").is_ok_and(|v| v == "1" || v == "true")
}

/// Prints the manifest as pretty JSON on stdout when [`requested`]; returns whether it did.
pub fn print_if_requested(app: &App) -> bool {
    if requested() {
        let text = serde_json::to_string_pretty(&app.manifest()).expect("manifest serialises");
        println!("{text}");
        true
    } else {
        false
    }
}
