//! Placeholder until the blob-store tests land.
