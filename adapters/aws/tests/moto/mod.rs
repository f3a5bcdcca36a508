//! A moto server (the AWS mock) for one test: started from `$NUBE_MOTO_SERVER` on a
//! free port, killed when dropped. `cargo xtask test` installs moto and sets the
//! variable; without it the tests fail, never skip.

// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod lost_answers;

use nube::testing::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The credentials and region every test uses; moto accepts anything.
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

pub struct Moto {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        let program = std::env::var("NUBE_MOTO_SERVER").unwrap_or_default();
        assert!(
            !program.is_empty(),
            "NUBE_MOTO_SERVER is not set: these tests need moto in server mode. Run `cargo xtask test` \
             (it installs moto into .tools/venv and sets NUBE_MOTO_SERVER), or `export $(cargo xtask tools)` \
             and run cargo test again, or set NUBE_MOTO_SERVER to a moto_server program"
        );
        Moto::start_program(&program)
    }

    /// Starts moto from `program` (a `moto_server`) and waits until it answers.
    pub fn start_program(program: &str) -> Moto {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temp file for moto's log");
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("moto log"))
            .stderr(log.reopen().expect("moto log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("could not start NUBE_MOTO_SERVER={program}: {e}; run `cargo xtask tools` to install moto")
            });
        let mut moto = Moto { child, port, log };
        moto.wait_until_ready();
        moto
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto exited ({status}) before answering:\n{}",
                    self.log_text()
                );
            }
            if self
                .request("GET", "/moto-api/")
                .is_ok_and(|status| status == 200)
            {
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "moto did not answer on port {} within 60 s:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends an unsigned request with no body and returns the status code. Moto sends
    /// unsigned requests to its S3 mock, which is how tests create buckets.
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))
    }

    /// What moto printed so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
