//! A Cosmos DB emulator for one test: `@vercel/cosmosdb-server` started from
//! `$NUBE_COSMOS_SERVER` on a free loopback port, behind a small loopback proxy that
//! works around where the emulator and the Rust SDK disagree. Killed when dropped.
//! `cargo xtask test` installs the emulator and sets the variable; without it the tests
//! fail, never skip.
//!
//! The emulator's gaps, all fixed here and never in the store:
//!
//! - it sends partition-key-range ids as numbers (`"id": 0`) where the SDK expects
//!   strings (the SDK answers 503/20305): the proxy turns them into strings;
//! - it advertises `https://` region endpoints even when it serves plain HTTP: the
//!   proxy rewrites them to its own `http://` address;
//! - it refuses queries without the partition key unless asked for a cross-partition
//!   query, which the SDK never says in the way it checks: the proxy adds
//!   `x-ms-documentdb-query-enablecrosspartition: true` to every request;
//! - it speaks neither HTTP/2 nor Cosmos binary JSON: the client is built with HTTP/2
//!   and binary encoding off (what `AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED=false`
//!   and `AZURE_COSMOS_BINARY_ENCODING_ENABLED=false` do from the environment).

// Each test binary uses part of this module.
#![allow(dead_code)]

mod server;

use nube_azure::cosmos::sdk::options::{BinaryEncodingOptions, ConnectionPoolOptions};
use nube_azure::cosmos::sdk::{CosmosClient, CosmosRuntime, RoutingStrategy};
use nube_azure::cosmos::{ConnectionString, CosmosStore, connect};

pub use server::CosmosEmulator;

impl CosmosEmulator {
    /// A client for the emulator: HTTP/1.1 only, text JSON.
    pub async fn client(&self) -> CosmosClient {
        let pool = ConnectionPoolOptions::builder()
            .with_is_http2_allowed(false)
            .build()
            .expect("connection pool options");
        let runtime = CosmosRuntime::builder()
            .with_connection_pool(pool)
            .build()
            .await
            .expect("a Cosmos runtime");
        let builder = CosmosClient::builder()
            .with_runtime(runtime)
            .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false));
        let connection = ConnectionString::parse(&self.connection_string()).unwrap();
        connect(
            &connection,
            builder,
            RoutingStrategy::PreferredRegions(Vec::new()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nrequests:\n{}", self.diagnostics()))
    }

    /// A store on database `database` that creates containers on first use.
    pub async fn store(&self, database: &str) -> CosmosStore {
        CosmosStore::new(self.client().await, database).create_missing_containers(true)
    }
}
