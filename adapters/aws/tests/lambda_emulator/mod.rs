//! cargo-lambda's Lambda emulator (`cargo lambda watch --only-lambda-apis`) for one
//! test or one `cargo xtask invoke`: the Runtime API each `bootstrap` polls and the
//! Invoke API that queues events for it, on a free loopback port; killed when dropped.
//! `cargo xtask test` installs cargo-lambda and sets `NUBE_CARGO_LAMBDA`; without it the
//! tests fail, never skip.
//!
//! How the emulator maps functions to processes: it accepts invocations only for
//! function names that are binary targets of the Cargo project it runs in, so it runs in
//! a scratch project whose `[[bin]]`s are the app's function names (never built), and
//! each bootstrap polls its own function's queue at `AWS_LAMBDA_RUNTIME_API` =
//! `http://<addr>/.rt/<function>`. `POST /2015-03-31/functions/<function>/invocations`
//! invokes; a function error comes back as 500 with Lambda's
//! `{"errorType","errorMessage"}`.

// Each user uses part of this module.
#![allow(dead_code)]

use nube::testing::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the emulator may take to answer.
const PATIENCE: Duration = Duration::from_secs(60);

/// A temp file for a process's output.
pub fn log_file() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().expect("a temp file for a process log")
}

/// What a process wrote to its [`log_file`] so far.
pub fn read_log(log: &tempfile::NamedTempFile) -> String {
    std::fs::read_to_string(log.path()).unwrap_or_default()
}

/// cargo-lambda's Lambda emulator, serving only the Runtime and Invoke APIs, on a free
/// loopback port; killed when dropped.
pub struct Emulator {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
    _project: tempfile::TempDir,
}

impl Emulator {
    /// Starts the emulator from `$NUBE_CARGO_LAMBDA` for `functions` and waits until it
    /// answers.
    pub fn start(functions: &[String]) -> Emulator {
        let program = std::env::var("NUBE_CARGO_LAMBDA").unwrap_or_default();
        assert!(
            !program.is_empty(),
            "NUBE_CARGO_LAMBDA is not set: this test drives the Lambda bootstrap through \
             cargo-lambda's Runtime API emulator. Run `cargo xtask test` (it installs cargo-lambda \
             into .tools/venv and sets NUBE_CARGO_LAMBDA and NUBE_MOTO_SERVER), or \
             `export $(cargo xtask tools)` and run cargo test again"
        );
        Emulator::start_program(&program, functions)
    }

    /// Starts the emulator from `program` (a `cargo-lambda`) for `functions` and waits
    /// until it answers.
    pub fn start_program(program: &str, functions: &[String]) -> Emulator {
        // The emulator only invokes functions that are binaries of its Cargo project.
        let project = tempfile::tempdir().expect("a temp dir for the emulator's project");
        let mut manifest = String::from(
            "# The function names cargo-lambda's emulator accepts; never built.\n\
             [package]\nname = \"delivery-app-lambda-functions\"\nversion = \"0.0.0\"\n\
             edition = \"2021\"\npublish = false\n\n[workspace]\n",
        );
        std::fs::create_dir_all(project.path().join("src/bin")).unwrap();
        for f in functions {
            manifest.push_str(&format!(
                "\n[[bin]]\nname = \"{f}\"\npath = \"src/bin/{f}.rs\"\n"
            ));
            std::fs::write(
                project.path().join(format!("src/bin/{f}.rs")),
                "fn main() {}\n",
            )
            .unwrap();
        }
        std::fs::write(project.path().join("Cargo.toml"), manifest).unwrap();

        let port = free_port();
        let log = log_file();
        let child = Command::new(program)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .current_dir(project.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start NUBE_CARGO_LAMBDA={program}: {e}; run `cargo xtask tools` to install cargo-lambda"
                )
            });
        let mut emulator = Emulator {
            child,
            port,
            log,
            _project: project,
        };
        emulator.wait_until_ready();
        emulator
    }

    /// The emulator's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the emulator printed so far.
    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "cargo-lambda exited ({status}) before serving:\n{}",
                    read_log(&self.log)
                );
            }
            if self.answers() {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "cargo-lambda did not answer on port {} within {PATIENCE:?}:\n{}",
                self.port,
                read_log(&self.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the Invoke API answers: an invocation of a function it does not know
    /// gets 404 at once. (Most other paths are function URL requests for the default
    /// function, which wait for a function process.)
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "POST /2015-03-31/functions/nube-readiness-probe/invocations HTTP/1.1\r\n\
             Host: 127.0.0.1:{}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            self.port
        );
        let mut answer = [0u8; 12];
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && answer.starts_with(b"HTTP/1.1 404")
    }

    /// What a bootstrap of `function` sets `AWS_LAMBDA_RUNTIME_API` to.
    pub fn runtime_api(&self, function: &str) -> String {
        format!("http://127.0.0.1:{}/.rt/{function}", self.port)
    }

    /// The Invoke API's URL for `function`.
    pub fn invoke_url(&self, function: &str) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.port
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
