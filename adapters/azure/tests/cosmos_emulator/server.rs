//! The Cosmos DB emulator process and its proxy, without the SDK: what
//! [`super`]'s module docs describe, for the tests (through `mod.rs`, which adds the SDK
//! client) and for `cargo xtask invoke` (which includes this file alone).

// Each test binary uses part of this module.
#![allow(dead_code)]

use nube::testing::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The emulators' well-known account key (the emulator accepts any key).
pub const KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

pub struct CosmosEmulator {
    child: Child,
    port: u16,
    proxy: Proxy,
    log: tempfile::NamedTempFile,
}

impl CosmosEmulator {
    /// Starts the emulator and its proxy, and waits until it answers.
    pub fn start() -> CosmosEmulator {
        let program = std::env::var("NUBE_COSMOS_SERVER").unwrap_or_default();
        assert!(
            !program.is_empty(),
            "NUBE_COSMOS_SERVER is not set: these tests need the Cosmos DB emulator from npm \
             (@vercel/cosmosdb-server). Run `cargo xtask test` (it installs it into .tools/npm and sets \
             NUBE_COSMOS_SERVER), or `export $(cargo xtask tools)` and run cargo test again, or set \
             NUBE_COSMOS_SERVER to a cosmosdb-server program"
        );
        CosmosEmulator::start_program(&program)
    }

    /// Starts the emulator from `program` (a `cosmosdb-server`) and its proxy, and waits
    /// until it answers.
    pub fn start_program(program: &str) -> CosmosEmulator {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temp file for the emulator's log");
        let child = Command::new(program)
            .args(["-p", &port.to_string(), "--host", "127.0.0.1", "--no-ssl"])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("emulator log"))
            .stderr(log.reopen().expect("emulator log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start NUBE_COSMOS_SERVER={program}: {e}; run `cargo xtask tools` to install it"
                )
            });
        let proxy = Proxy::start(port);
        let mut emulator = CosmosEmulator {
            child,
            port,
            proxy,
            log,
        };
        emulator.wait_until_ready();
        emulator
    }

    /// Loses the answer to the next document write of `method` (`POST` creates, `PUT`
    /// replaces): the emulator applies it, and the client's connection is closed.
    pub fn lose_next_answer(&self, method: &str) {
        *self.proxy.faults.lose.lock().unwrap() = Some(method.to_owned());
    }

    /// How many answers were lost so far.
    pub fn lost_answers(&self) -> usize {
        *self.proxy.faults.lost.lock().unwrap()
    }

    /// The account endpoint the SDK talks to: the proxy, `http://127.0.0.1:<port>/`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proxy.port)
    }

    /// `AccountEndpoint=<endpoint>;AccountKey=<well-known key>;`.
    pub fn connection_string(&self) -> String {
        format!("AccountEndpoint={};AccountKey={KEY};", self.endpoint())
    }

    /// The emulator's log and the requests the proxy saw, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "{}\n--- emulator log ---\n{}",
            self.proxy.requests.lock().unwrap().join("\n"),
            std::fs::read_to_string(self.log.path()).unwrap_or_default()
        )
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the Cosmos DB emulator exited ({status}) before answering:\n{}",
                    self.diagnostics()
                );
            }
            if get_status(self.port, "/").is_ok_and(|s| s == 200) {
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "the Cosmos DB emulator did not answer on port {} within 60 s:\n{}",
                    self.port,
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for CosmosEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_status(port: u16, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))
}

/// The loopback HTTP/1.1 proxy in front of the emulator: one thread per client
/// connection, one upstream connection per request (the emulator closes each).
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    faults: Arc<Faults>,
}

/// Answers to lose: the request reaches the emulator and is applied, and the client's
/// connection is closed instead of answered, as when an answer is lost in transit.
#[derive(Default)]
struct Faults {
    /// The method (`POST`, `PUT`) of the next document write whose answer is lost.
    lose: Mutex<Option<String>>,
    lost: Mutex<usize>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a port for the proxy");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Faults::default());
        let (s, r, f) = (stop.clone(), requests.clone(), faults.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (r, f) = (r.clone(), f.clone());
                std::thread::spawn(move || serve(client, upstream, port, &r, &f));
            }
        });
        Proxy {
            port,
            stop,
            requests,
            faults,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One HTTP message: start line, headers, body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn write_to(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("transfer-encoding"));
        let len = self.body.len().to_string();
        self.set_header("Content-Length", &len);
        let mut head = format!("{}\r\n", self.start);
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

/// Reads one message; `None` at a clean end of stream. `until_eof`: a response without
/// length runs to the end of the connection.
fn read_message(reader: &mut impl BufRead, until_eof: bool) -> std::io::Result<Option<Message>> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut message = Message {
        start: start.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            message.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = message.header("content-length") {
        let len: usize = len.parse().map_err(std::io::Error::other)?;
        message.body = vec![0; len];
        reader.read_exact(&mut message.body)?;
    } else if until_eof {
        reader.read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

fn serve(
    client: TcpStream,
    upstream: u16,
    own_port: u16,
    log: &Mutex<Vec<String>>,
    faults: &Faults,
) {
    let mut reader = BufReader::new(client.try_clone().expect("clone the client stream"));
    let mut writer = client;
    while let Ok(Some(mut request)) = read_message(&mut reader, false) {
        request.set_header("x-ms-documentdb-query-enablecrosspartition", "true");
        request.set_header("Connection", "close");
        request.set_header("Host", &format!("127.0.0.1:{upstream}"));
        let response = TcpStream::connect(("127.0.0.1", upstream)).and_then(|mut up| {
            request.write_to(&mut up)?;
            let mut up_reader = BufReader::new(up);
            read_message(&mut up_reader, true)?
                .ok_or_else(|| std::io::Error::other("the emulator closed without answering"))
        });
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                log.lock()
                    .unwrap()
                    .push(format!("{} -> proxy error {e}", request.start));
                break;
            }
        };
        {
            let mut lose = faults.lose.lock().unwrap();
            let method = request.start.split(' ').next().unwrap_or_default();
            if lose.as_deref() == Some(method) && request.start.contains("/docs") {
                *lose = None;
                *faults.lost.lock().unwrap() += 1;
                log.lock()
                    .unwrap()
                    .push(format!("{} -> answer lost", request.start));
                break;
            }
        }
        rewrite(&mut response, upstream, own_port);
        log.lock().unwrap().push(format!(
            "{} -> {} {}",
            request.start,
            response.start,
            String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
        ));
        response.set_header("Connection", "keep-alive");
        if response.write_to(&mut writer).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// The emulator's answers as the SDK expects them (see the module docs).
fn rewrite(response: &mut Message, upstream: u16, own_port: u16) {
    let Ok(mut body) = serde_json::from_slice::<Value>(&response.body) else {
        return;
    };
    let mut changed = false;
    if let Some(Value::Array(ranges)) = body.get_mut("PartitionKeyRanges") {
        for range in ranges {
            if let Some(id) = range.get_mut("id")
                && id.is_number()
            {
                *id = Value::String(id.to_string());
                changed = true;
            }
        }
    }
    let advertised = format!("https://127.0.0.1:{upstream}/");
    for list in ["writableLocations", "readableLocations"] {
        if let Some(Value::Array(locations)) = body.get_mut(list) {
            for location in locations {
                if let Some(endpoint) = location.get_mut("databaseAccountEndpoint")
                    && endpoint.as_str() == Some(advertised.as_str())
                {
                    *endpoint = Value::String(format!("http://127.0.0.1:{own_port}/"));
                    changed = true;
                }
            }
        }
    }
    if changed {
        response.body = serde_json::to_vec(&body).expect("JSON serialises");
    }
}
