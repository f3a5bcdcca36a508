//! Azurite's blob service for one test: started from `$NUBE_AZURITE_BLOB` on a free
//! loopback port with its data in a temporary folder, killed when dropped. `cargo xtask
//! test` installs Azurite and sets the variable; without it the tests fail, never skip.

// Each test binary uses part of this module.
#![allow(dead_code)]

mod server;

use nube_azure::blob_store::{DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY};

pub use server::Azurite;
