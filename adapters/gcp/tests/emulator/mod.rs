//! An emulator process for one test: started on a free loopback port, killed (with its
//! whole process group: the Firestore emulator is a shell script running Java) when
//! dropped. `cargo xtask test` sets the variables naming the programs; without them the
//! tests fail, never skip.

// Each test binary uses part of this module.
#![allow(dead_code)]

use nube::testing::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `google-cloud-cli-firestore-emulator` package puts the emulator.
pub const PACKAGED_FIRESTORE_EMULATOR: &str =
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator";

pub struct Emulator {
    name: &'static str,
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Emulator {
    /// The Cloud Firestore emulator: `$NUBE_FIRESTORE_EMULATOR`, else the packaged one.
    /// Fails, naming what is missing, when neither the emulator nor Java is there.
    pub fn firestore() -> Emulator {
        let program = std::env::var("NUBE_FIRESTORE_EMULATOR")
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                Path::new(PACKAGED_FIRESTORE_EMULATOR)
                    .exists()
                    .then(|| PACKAGED_FIRESTORE_EMULATOR.to_owned())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the Cloud Firestore emulator is missing: NUBE_FIRESTORE_EMULATOR is not set and \
                     {PACKAGED_FIRESTORE_EMULATOR} does not exist. Install Debian's \
                     google-cloud-cli-firestore-emulator package (with Java 17+: openjdk-17-jre-headless), \
                     then run `cargo xtask test`, or `export $(cargo xtask tools)` and cargo test again"
                )
            });
        Self::firestore_at(&program)
    }

    /// The Cloud Firestore emulator from `program` (its start script). Fails, naming
    /// what is missing, when Java is not there.
    pub fn firestore_at(program: &str) -> Emulator {
        let java = std::env::var("JAVA").unwrap_or_else(|_| "java".into());
        let version = Command::new(&java).arg("-version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "Java is missing ({java} -version failed: {version:?}): the Cloud Firestore emulator needs \
             Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
        );
        let port = free_port();
        Self::start(
            "the Cloud Firestore emulator",
            program,
            &[
                "start".into(),
                "--host=127.0.0.1".into(),
                format!("--port={port}"),
            ],
            port,
        )
    }

    /// gcp-storage-emulator, in memory: `$NUBE_GCS_EMULATOR`.
    pub fn gcs() -> Emulator {
        let program = std::env::var("NUBE_GCS_EMULATOR").unwrap_or_default();
        assert!(
            !program.is_empty(),
            "NUBE_GCS_EMULATOR is not set: these tests need gcp-storage-emulator (PyPI). Run `cargo xtask test` \
             (it installs it into .tools/venv and sets NUBE_GCS_EMULATOR), or `export $(cargo xtask tools)` \
             and run cargo test again"
        );
        Self::gcs_at(&program)
    }

    /// gcp-storage-emulator from `program`, in memory.
    pub fn gcs_at(program: &str) -> Emulator {
        let port = free_port();
        Self::start(
            "gcp-storage-emulator",
            program,
            &[
                "start".into(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--in-memory".into(),
            ],
            port,
        )
    }

    fn start(name: &'static str, program: &str, args: &[String], port: u16) -> Emulator {
        let log = tempfile::NamedTempFile::new().expect("temp file for the emulator's log");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("emulator log"))
            .stderr(log.reopen().expect("emulator log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({program}): {e}"));
        let mut emulator = Emulator {
            name,
            child,
            port,
            log,
        };
        emulator.wait_until_ready();
        emulator
    }

    /// The emulator's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before answering:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if self.request("GET", "/", "").is_ok() {
                return;
            }
            if started.elapsed() > Duration::from_secs(120) {
                panic!(
                    "{} did not answer on port {} within 120 s:\n{}",
                    self.name,
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends a request with a JSON body (may be empty) and returns the status code and
    /// the body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let response = read_response(&mut stream)?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The whole group: the emulator's own children (Java) too.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request or response: the head, then the body by `Content-Length` (the emulators keep the
/// connection open whatever the request says, so reading to the end would hang).
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(response);
        }
        response.extend_from_slice(&buf[..n]);
        let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let body = response.len() - head_end - 4;
        match length {
            Some(length) if body >= length => return Ok(response),
            Some(_) => {}
            None if head.contains("transfer-encoding: chunked") => {
                if response.ends_with(b"0\r\n\r\n") {
                    return Ok(response);
                }
            }
            None => return Ok(response),
        }
    }
}
