//! Azurite's blob service process, as [`super`]'s module docs describe; the parent
//! module provides the development account and key (`nube_azure::blob_store`'s for the
//! tests, through `mod.rs`; `cargo xtask invoke` includes this file alone, with its own).

// Each test binary uses part of this module.
#![allow(dead_code)]

use nube::testing::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};

/// The API version of the requests this module signs.
const VERSION: &str = "2021-08-06";

pub struct Azurite {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
    log: tempfile::NamedTempFile,
}

impl Azurite {
    /// Starts Azurite's blob service and waits until it answers.
    pub fn start() -> Azurite {
        let program = std::env::var("NUBE_AZURITE_BLOB").unwrap_or_default();
        assert!(
            !program.is_empty(),
            "NUBE_AZURITE_BLOB is not set: these tests need Azurite's blob service from npm (azurite). \
             Run `cargo xtask test` (it installs it into .tools/npm and sets NUBE_AZURITE_BLOB), or \
             `export $(cargo xtask tools)` and run cargo test again, or set NUBE_AZURITE_BLOB to an \
             azurite-blob program"
        );
        Azurite::start_program(&program)
    }

    /// Starts Azurite's blob service from `program` (an `azurite-blob`) and waits until
    /// it answers.
    pub fn start_program(program: &str) -> Azurite {
        let port = free_port();
        let data = tempfile::tempdir().expect("a folder for Azurite's data");
        let log = tempfile::NamedTempFile::new().expect("temp file for Azurite's log");
        let child = Command::new(program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--skipApiVersionCheck", "--silent"])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("azurite log"))
            .stderr(log.reopen().expect("azurite log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start NUBE_AZURITE_BLOB={program}: {e}; run `cargo xtask tools` to install it"
                )
            });
        let mut azurite = Azurite {
            child,
            port,
            data,
            log,
        };
        azurite.wait_until_ready();
        azurite
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`: the path-style blob endpoint.
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{DEVELOPMENT_ACCOUNT}", self.port)
    }

    /// The `AzureWebJobsStorage`-style connection string of this Azurite.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT};AccountKey={DEVELOPMENT_KEY};BlobEndpoint={};",
            self.blob_endpoint()
        )
    }

    /// Creates the blob container `name` (Shared Key signed `Create Container`);
    /// returns the status (`201`, or `409` when it exists).
    pub fn create_container(&self, name: &str) -> u16 {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let path = format!("/{DEVELOPMENT_ACCOUNT}/{name}");
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{DEVELOPMENT_ACCOUNT}{path}\nrestype:container"
        );
        let key = BASE64.decode(DEVELOPMENT_KEY).expect("the key is base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(string_to_sign.as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to Azurite");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "PUT {path}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {VERSION}\r\nAuthorization: SharedKey {DEVELOPMENT_ACCOUNT}:{signature}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}\n{}", self.log_text()))
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Azurite exited ({status}) before answering:\n{}",
                    self.log_text()
                );
            }
            if self.answers() {
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "Azurite did not answer on port {} within 60 s:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let sent = write!(
            stream,
            "GET /{DEVELOPMENT_ACCOUNT}?comp=list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        let mut response = Vec::new();
        sent.is_ok() && stream.read_to_end(&mut response).is_ok() && response.starts_with(b"HTTP/")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
