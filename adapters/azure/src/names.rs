//! Names on Azure: functions, and the app settings that name the app's resources.
//!
//! **Functions.** An Azure function's name (its folder in the function app, and the
//! path the host POSTs invocations to) must match `^[a-zA-Z][a-zA-Z0-9_-]*$` (at most
//! 127 characters). nube function names are 1–32 characters of `a-z 0-9 -`, starting
//! with a letter and not ending with `-` ([`nube::app::validate_name`]), so every valid
//! nube name is a valid Azure name, and the mapping is the identity: the Azure
//! function `make-thumbnails` runs the nube function `make-thumbnails`. Azure treats
//! function names case-insensitively, and so does [`nube_function`].
//!
//! **Resources.** The packager writes the physical names into app settings, which the
//! host exposes as environment variables and binding expressions (`%NAME%`) resolve:
//!
//! | logical | setting | value |
//! |---|---|---|
//! | bucket `user-uploads` | `NUBE_BUCKET_USER_UPLOADS` | the blob container's name |
//! | collection `orders` | `NUBE_COLLECTION_ORDERS` | the Cosmos DB container's name |
//! | (all collections) | `NUBE_COSMOS_DATABASE` | the Cosmos DB database |
//! | (connections) | `AzureWebJobsStorage`, `NUBE_COSMOS` | connection settings the bindings name |
//!
//! The variable names come from [`nube::manifest::env_var`], as on AWS.

use nube::App;

/// Azure's limit on a function name's length.
pub const MAX_FUNCTION_NAME: usize = 127;

/// The Azure function name of the nube function `nube_name`: the same name, checked
/// against Azure's rule (`^[a-zA-Z][a-zA-Z0-9_-]*$`).
pub fn azure_function_name(nube_name: &str) -> Result<String, String> {
    let ok = nube_name.len() <= MAX_FUNCTION_NAME
        && nube_name.starts_with(|c: char| c.is_ascii_alphabetic())
        && nube_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(nube_name.to_owned())
    } else {
        Err(format!(
            "function name {nube_name:?} is not a valid Azure function name (^[a-zA-Z][a-zA-Z0-9_-]*$, at most {MAX_FUNCTION_NAME} characters)"
        ))
    }
}

/// Host invocations arrive as `POST /<function>`, forwarded HTTP requests on their own
/// path under host.json's `routePrefix`. An event function reachable both ways could be
/// sent an invocation by any HTTP client, so when the app has HTTP functions no event
/// function may be named like the prefix, and the prefix may not be empty.
/// `functions` are the app's, each with whether it is an HTTP function.
pub fn check_invocation_paths<'a>(
    functions: impl IntoIterator<Item = (&'a str, bool)>,
    route_prefix: &str,
) -> Result<(), String> {
    let (http, events): (Vec<_>, Vec<_>) = functions.into_iter().partition(|(_, http)| *http);
    if http.is_empty() {
        return Ok(());
    }
    let prefix = route_prefix.trim_matches('/');
    for (name, _) in events {
        if prefix.is_empty() {
            return Err(format!(
                "host.json's routePrefix is empty, so HTTP requests share paths with the host's invocations and a client \
                 could post the event function {name:?} an invocation: set extensions.http.routePrefix (nube packages \
                 with \"api\")"
            ));
        }
        if name.eq_ignore_ascii_case(prefix) {
            return Err(format!(
                "the event function {name:?} is named like the route prefix {prefix:?}, so its invocations \
                 (POST /{name}) share a path with HTTP requests to the prefix's root: rename the function"
            ));
        }
    }
    Ok(())
}

/// The nube function the host means by `azure_name` (case-insensitive): the function
/// of that name, or the HTTP function that one of its route groups was split off
/// (`<function>-<first path segment>`, see [`crate::descriptors::http_route_groups`]).
pub fn nube_function<'a>(app: &'a App, azure_name: &str) -> Option<&'a nube::Function> {
    app.function(azure_name)
        .or_else(|| {
            app.functions()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(azure_name))
        })
        .or_else(|| {
            app.functions().iter().find(|f| {
                let nube::Trigger::Http(routes) = f.trigger() else {
                    return false;
                };
                let paths: Vec<&str> = routes.declared().iter().map(|r| r.path.as_str()).collect();
                crate::descriptors::split_names(f.name(), &paths)
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(azure_name))
            })
        })
}

/// The setting naming the blob container of the bucket `logical`:
/// `NUBE_BUCKET_<LOGICAL_UPPER_SNAKE>`.
pub fn bucket_setting(logical: &str) -> String {
    nube::manifest::env_var("NUBE_BUCKET", logical)
}

/// The setting naming the Cosmos DB container of the collection `logical`:
/// `NUBE_COLLECTION_<LOGICAL_UPPER_SNAKE>`.
pub fn collection_setting(logical: &str) -> String {
    nube::manifest::env_var("NUBE_COLLECTION", logical)
}

/// The setting naming the Cosmos DB database that holds every collection.
pub const COSMOS_DATABASE_SETTING: &str = "NUBE_COSMOS_DATABASE";

/// The connection setting (or, for identity-based connections, the prefix of
/// `NUBE_COSMOS__accountEndpoint`) of the Cosmos DB account.
pub const COSMOS_CONNECTION: &str = "NUBE_COSMOS";

/// The connection setting of the storage account holding the buckets: the function
/// app's own storage account.
pub const STORAGE_CONNECTION: &str = "AzureWebJobsStorage";

/// The physical name `setting` gives, or `logical` when it is unset or empty.
pub fn physical(setting: &str, logical: &str) -> String {
    std::env::var(setting)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| logical.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_functions_and_forwarded_requests_never_share_a_path() {
        let page = ("page", true);
        assert!(check_invocation_paths([page, ("nightly", false)], "api").is_ok());
        assert!(
            check_invocation_paths([("api", false)], "api").is_ok(),
            "nothing is forwarded"
        );
        let named = check_invocation_paths([page, ("nightly", false), ("API", false)], "/api/")
            .unwrap_err();
        assert!(
            named.contains("\"API\"") && named.contains("rename"),
            "{named}"
        );
        let empty = check_invocation_paths([page, ("nightly", false)], "").unwrap_err();
        assert!(empty.contains("routePrefix"), "{empty}");
        assert!(
            check_invocation_paths([page], "").is_ok(),
            "no event function"
        );
    }

    #[test]
    fn every_valid_nube_name_is_a_valid_azure_name() {
        for name in [
            "a",
            "make-thumbnails",
            "orders-read-model",
            "x1",
            &"a".repeat(32),
        ] {
            assert!(nube::app::validate_name("function", name).is_ok());
            assert_eq!(azure_function_name(name).unwrap(), name);
        }
        assert!(azure_function_name("1abc").is_err());
        assert!(azure_function_name("a.b").is_err());
        assert!(azure_function_name(&"a".repeat(128)).is_err());
    }

    #[test]
    fn lookups_ignore_case_and_settings_follow_env_var() {
        let app = App::new("t").timer("nightly-job", "@daily", |_t, _c| async { Ok(()) });
        assert_eq!(
            nube_function(&app, "Nightly-Job").unwrap().name(),
            "nightly-job"
        );
        assert!(nube_function(&app, "other").is_none());
        assert_eq!(bucket_setting("user-uploads"), "NUBE_BUCKET_USER_UPLOADS");
        assert_eq!(
            collection_setting("order.events"),
            "NUBE_COLLECTION_ORDER_EVENTS"
        );
    }
}
