//! Logical names (what the app declares) and physical names (what Google Cloud calls
//! the resources), mapped through environment variables the deployment sets:
//!
//! | logical | variable | value |
//! |---|---|---|
//! | bucket `user-uploads` | `NUBE_BUCKET_USER_UPLOADS` | the Cloud Storage bucket's name |
//! | collection `orders` | `NUBE_COLLECTION_ORDERS` | the Firestore collection's path |
//!
//! A collection without its variable is named `$NUBE_COLLECTION_PREFIX` followed by its
//! logical name (the prefix is empty by default); a bucket without its variable keeps its
//! logical name. The event decoders map
//! physical names back ([`ResourceNames::logical_bucket`],
//! [`ResourceNames::logical_collection`]); [`crate::descriptors`] sets the variables.

use std::collections::HashMap;

use nube::App;

/// A resource name `projects/<p>/<kind>/<name>/<marker>/<rest>` split by position into
/// its prefix (`projects/<p>/<kind>/<name>`) and `rest` (not empty): a database named
/// `documents` or a bucket named `objects` does not end the prefix.
pub(crate) fn split_resource_name<'a>(
    name: &'a str,
    kind: &str,
    marker: &str,
) -> Option<(&'a str, &'a str)> {
    let mut parts = name.splitn(6, '/');
    let [projects, project, k, owner, m, rest] =
        std::array::from_fn(|_| parts.next().unwrap_or_default());
    let prefix_len = projects.len() + project.len() + k.len() + owner.len() + 3;
    (projects == "projects" && k == kind && m == marker && !rest.is_empty())
        .then(|| (&name[..prefix_len], rest))
}

/// The variable naming the Cloud Storage bucket of the logical bucket `logical`:
/// `NUBE_BUCKET_<LOGICAL_UPPER_SNAKE>` (the same variable as on AWS).
pub fn bucket_env_var(logical: &str) -> String {
    nube::manifest::env_var("NUBE_BUCKET", logical)
}

/// The variable naming the Firestore collection of the collection `logical`:
/// `NUBE_COLLECTION_<LOGICAL_UPPER_SNAKE>`.
pub fn collection_env_var(logical: &str) -> String {
    nube::manifest::env_var("NUBE_COLLECTION", logical)
}

/// The variable holding the prefix of Firestore collections that have no
/// `NUBE_COLLECTION_<NAME>` variable (`prod-` makes `orders` the collection `prod-orders`).
pub const COLLECTION_PREFIX_ENV: &str = "NUBE_COLLECTION_PREFIX";

/// The Firestore collection path of the collection `logical`, reading variables through
/// `lookup`: the value of [`collection_env_var`], else [`COLLECTION_PREFIX_ENV`] followed by
/// `logical`. A path may name a subcollection (`tenants/t1/orders`).
pub fn collection_path(logical: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    match lookup(&collection_env_var(logical)).filter(|p| !p.is_empty()) {
        Some(path) => path,
        None => format!(
            "{}{logical}",
            lookup(COLLECTION_PREFIX_ENV).unwrap_or_default()
        ),
    }
}

/// The physical names of an app's buckets and collections, both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceNames {
    /// Physical bucket → logical bucket.
    buckets: HashMap<String, String>,
    /// Physical collection → logical collection.
    collections: HashMap<String, String>,
}

impl ResourceNames {
    /// No mappings: every physical name is taken as the logical one.
    pub fn new() -> Self {
        Self::default()
    }

    /// The mappings for `app`'s declared buckets and collections, from the process
    /// environment.
    pub fn from_env(app: &App) -> Self {
        Self::from_lookup(app, |var| std::env::var(var).ok())
    }

    /// Like [`ResourceNames::from_env`], reading variables through `lookup`.
    pub fn from_lookup(app: &App, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut names = Self::new();
        for logical in app.buckets() {
            if let Some(physical) = lookup(&bucket_env_var(logical)).filter(|p| !p.is_empty()) {
                names = names.with_bucket(logical, physical);
            }
        }
        for logical in app.collections() {
            let physical = collection_path(logical, &lookup);
            if physical != logical {
                names = names.with_collection(logical, physical);
            }
        }
        names
    }

    /// Maps the Cloud Storage bucket `physical` to the app's bucket `logical`.
    pub fn with_bucket(mut self, logical: impl Into<String>, physical: impl Into<String>) -> Self {
        self.buckets.insert(physical.into(), logical.into());
        self
    }

    /// Maps the Firestore collection `physical` to the app's collection `logical`.
    pub fn with_collection(
        mut self,
        logical: impl Into<String>,
        physical: impl Into<String>,
    ) -> Self {
        self.collections.insert(physical.into(), logical.into());
        self
    }

    /// The logical bucket of the Cloud Storage bucket `physical` (itself when unmapped).
    pub fn logical_bucket<'a>(&'a self, physical: &'a str) -> &'a str {
        self.buckets.get(physical).map_or(physical, String::as_str)
    }

    /// The logical collection of the Firestore collection `physical` (itself when
    /// unmapped).
    pub fn logical_collection<'a>(&'a self, physical: &'a str) -> &'a str {
        self.collections
            .get(physical)
            .map_or(physical, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_lookups() {
        assert_eq!(bucket_env_var("user-uploads"), "NUBE_BUCKET_USER_UPLOADS");
        assert_eq!(
            collection_env_var("order-events"),
            "NUBE_COLLECTION_ORDER_EVENTS"
        );
        let app = App::new("t").bucket("uploads").collection("orders");
        let names = ResourceNames::from_lookup(&app, |v| match v {
            "NUBE_BUCKET_UPLOADS" => Some("p-t-uploads".into()),
            "NUBE_COLLECTION_ORDERS" => Some("t-orders".into()),
            _ => None,
        });
        assert_eq!(names.logical_bucket("p-t-uploads"), "uploads");
        assert_eq!(names.logical_bucket("other"), "other");
        assert_eq!(names.logical_collection("t-orders"), "orders");
        assert_eq!(names.logical_collection("orders"), "orders");
        let prefixed = ResourceNames::from_lookup(&app, |v| {
            (v == COLLECTION_PREFIX_ENV).then(|| "prod-".to_owned())
        });
        assert_eq!(prefixed.logical_collection("prod-orders"), "orders");
        assert_eq!(
            collection_path("orders", |v| match v {
                "NUBE_COLLECTION_ORDERS" => Some("tenants/t1/orders".into()),
                _ => Some("ignored-".into()),
            }),
            "tenants/t1/orders"
        );
    }
}
