//! Logical names (what the app declares) and physical names (what AWS calls the
//! resources), mapped through environment variables the deployment sets:
//!
//! | logical | variable | value |
//! |---|---|---|
//! | bucket `user-uploads` | `NUBE_BUCKET_USER_UPLOADS` | the S3 bucket's name |
//! | collection `orders` | `NUBE_TABLE_ORDERS` | the DynamoDB table's name |
//!
//! A bucket without its variable keeps its logical name as physical name; a collection
//! without its variable lives in the table `NUBE_TABLE_PREFIX` + its name (the prefix
//! is empty unless set). These are the names the backends (`nube_aws::dynamodb`,
//! `nube_aws::s3`) resolve; the event decoders map them back.

use std::collections::HashMap;

use nube::App;

/// The variable naming the S3 bucket of the logical bucket `logical`:
/// `NUBE_BUCKET_<LOGICAL_UPPER_SNAKE>`.
pub fn bucket_env_var(logical: &str) -> String {
    nube::manifest::env_var("NUBE_BUCKET", logical)
}

/// The variable naming the DynamoDB table of the collection `logical`:
/// `NUBE_TABLE_<LOGICAL_UPPER_SNAKE>`.
pub fn table_env_var(logical: &str) -> String {
    nube::manifest::env_var("NUBE_TABLE", logical)
}

/// The variable whose value prefixes the table name of a collection that has no
/// [`table_env_var`] of its own.
pub const TABLE_PREFIX_ENV: &str = "NUBE_TABLE_PREFIX";

/// The DynamoDB table of the collection `logical`, reading variables through
/// `lookup`: its [`table_env_var`] when set, else [`TABLE_PREFIX_ENV`] + `logical`.
pub fn table_name(logical: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    lookup(&table_env_var(logical))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| lookup(TABLE_PREFIX_ENV).unwrap_or_default() + logical)
}

/// The physical names of an app's buckets and collections, both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceNames {
    /// Physical bucket → logical bucket.
    buckets: HashMap<String, String>,
    /// Physical table → logical collection.
    tables: HashMap<String, String>,
}

impl ResourceNames {
    /// No mappings: every physical name is taken as the logical one.
    pub fn new() -> Self {
        Self::default()
    }

    /// The mappings for `app`'s declared buckets and collections, read from the
    /// process environment ([`bucket_env_var`], [`table_env_var`]).
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
            let physical = table_name(logical, &lookup);
            if physical != logical {
                names = names.with_table(logical, physical);
            }
        }
        names
    }

    /// Maps the S3 bucket `physical` to the app's bucket `logical`.
    pub fn with_bucket(mut self, logical: impl Into<String>, physical: impl Into<String>) -> Self {
        self.buckets.insert(physical.into(), logical.into());
        self
    }

    /// Maps the DynamoDB table `physical` to the app's collection `logical`.
    pub fn with_table(mut self, logical: impl Into<String>, physical: impl Into<String>) -> Self {
        self.tables.insert(physical.into(), logical.into());
        self
    }

    /// The logical bucket of the S3 bucket `physical` (itself when unmapped).
    pub fn logical_bucket<'a>(&'a self, physical: &'a str) -> &'a str {
        self.buckets.get(physical).map_or(physical, String::as_str)
    }

    /// The logical collection of the DynamoDB table `physical` (itself when unmapped).
    pub fn logical_collection<'a>(&'a self, physical: &'a str) -> &'a str {
        self.tables.get(physical).map_or(physical, String::as_str)
    }

    /// The S3 bucket of the logical bucket `logical` (itself when unmapped).
    pub fn physical_bucket<'a>(&'a self, logical: &'a str) -> &'a str {
        self.buckets
            .iter()
            .find(|(_, l)| l.as_str() == logical)
            .map_or(logical, |(p, _)| p.as_str())
    }

    /// The DynamoDB table of the collection `logical` (itself when unmapped).
    pub fn physical_table<'a>(&'a self, logical: &'a str) -> &'a str {
        self.tables
            .iter()
            .find(|(_, l)| l.as_str() == logical)
            .map_or(logical, |(p, _)| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_lookups() {
        assert_eq!(bucket_env_var("user-uploads"), "NUBE_BUCKET_USER_UPLOADS");
        assert_eq!(
            table_env_var("order.events_v2"),
            "NUBE_TABLE_ORDER_EVENTS_V2"
        );
        let app = App::new("t")
            .bucket("uploads")
            .bucket("other")
            .collection("orders");
        let names = ResourceNames::from_lookup(&app, |v| match v {
            "NUBE_BUCKET_UPLOADS" => Some("t-uploads-123".into()),
            "NUBE_TABLE_ORDERS" => Some("t-orders".into()),
            _ => None,
        });
        assert_eq!(names.logical_bucket("t-uploads-123"), "uploads");
        assert_eq!(names.logical_bucket("other"), "other");
        assert_eq!(names.physical_bucket("uploads"), "t-uploads-123");
        assert_eq!(names.logical_collection("t-orders"), "orders");
        assert_eq!(names.physical_table("orders"), "t-orders");
        assert_eq!(names.logical_collection("unknown"), "unknown");
        let prefixed = ResourceNames::from_lookup(&app, |v| {
            (v == TABLE_PREFIX_ENV).then(|| "prod-".to_owned())
        });
        assert_eq!(prefixed.logical_collection("prod-orders"), "orders");
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn same_table_variables_as_the_dynamodb_store() {
        for name in ["orders", "order-events", "a.b_c"] {
            assert_eq!(
                table_env_var(name),
                crate::dynamodb::TableNaming::env_var(name)
            );
        }
        assert_eq!(TABLE_PREFIX_ENV, crate::dynamodb::TABLE_PREFIX_ENV);
    }

    #[cfg(feature = "s3")]
    #[test]
    fn same_bucket_variables_as_the_s3_store() {
        for name in ["uploads", "user-uploads", "a1-b2"] {
            assert_eq!(bucket_env_var(name), crate::s3::bucket_env_var(name));
        }
    }
}
