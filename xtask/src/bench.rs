//! `cargo xtask bench local`: measures the local runtime with the delivery-app.
//! Placeholder replaced below.
