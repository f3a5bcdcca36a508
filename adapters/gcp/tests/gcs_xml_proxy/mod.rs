//! Cloud Storage's XML API in front of gcp-storage-emulator, for the delivery app's
//! end-to-end test and `cargo xtask invoke`: the emulator's XML API answers `HEAD` with
//! 501 and sends neither `ETag` nor `Last-Modified`; this proxy answers them as Cloud
//! Storage's XML API does (for a non-composite object the `ETag` is its MD5 in hex,
//! `Last-Modified` its `updated` time), from the emulator's metadata.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

/// A loopback proxy in front of gcp-storage-emulator (on `upstream`) that answers the
/// XML API as Cloud Storage does where the emulator does not: `HEAD` (sent upstream as
/// `GET`, the body dropped), and `ETag` (the MD5 in hex, quoted) and `Last-Modified`
/// (the object's `updated`) on every object answer, from the emulator's JSON metadata.
/// Returns `http://127.0.0.1:<port>`; its threads end with the test process.
pub fn gcs_xml_proxy(upstream: u16) -> String {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a proxy port");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = proxy_connection(client, upstream);
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// One HTTP/1.x message: the head's lines and the body.
struct HttpMessage {
    head: Vec<String>,
    body: Vec<u8>,
}

impl HttpMessage {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.join("\r\n").into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reads one message (the body by `Content-Length`, else to the end of the stream when
/// `to_eof`); `None` when the stream ends before one starts.
fn read_message(stream: &mut TcpStream, to_eof: bool) -> std::io::Result<Option<HttpMessage>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return if data.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::other("the stream ended within a head"))
            };
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head: Vec<String> = String::from_utf8_lossy(&data[..head_end])
        .split("\r\n")
        .map(str::to_owned)
        .collect();
    let mut message = HttpMessage {
        head,
        body: data[head_end + 4..].to_vec(),
    };
    let length = message
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    loop {
        let done = match length {
            Some(length) => message.body.len() >= length,
            None => !to_eof,
        };
        if done {
            return Ok(Some(message));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(Some(message));
        }
        message.body.extend_from_slice(&buf[..n]);
    }
}

/// Sends `request` to the emulator and reads its answer (it closes each connection).
fn upstream_call(upstream: u16, request: &[u8]) -> std::io::Result<HttpMessage> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.set_read_timeout(Some(Duration::from_secs(30)))?;
    server.write_all(request)?;
    read_message(&mut server, true)?
        .ok_or_else(|| std::io::Error::other("the emulator closed without answering"))
}

/// The emulator's JSON metadata of the object at XML path `/<bucket>/<encoded name>`.
fn object_metadata(upstream: u16, path: &str) -> Option<Value> {
    let path = path.split('?').next()?;
    let (bucket, name) = path.strip_prefix('/')?.split_once('/')?;
    if name.is_empty() || ["storage", "upload", "download", "b"].contains(&bucket) {
        return None;
    }
    let request = format!(
        "GET /storage/v1/b/{bucket}/o/{name} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\n\
         Connection: close\r\n\r\n"
    );
    let answer = upstream_call(upstream, request.as_bytes()).ok()?;
    if !answer.head[0].contains(" 200 ") {
        return None;
    }
    serde_json::from_slice(&answer.body).ok()
}

fn proxy_connection(mut client: TcpStream, upstream: u16) -> std::io::Result<()> {
    while let Some(mut request) = read_message(&mut client, false)? {
        let mut parts = request.head[0].splitn(3, ' ');
        let (method, path) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let head_only = method == "HEAD";
        if head_only {
            request.head[0] = request.head[0].replacen("HEAD", "GET", 1);
        }
        let mut response = upstream_call(upstream, &request.bytes())?;
        let success = response.head[0]
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('2'));
        if success && let Some(meta) = object_metadata(upstream, &path) {
            response.head.retain(|l| {
                let l = l.to_ascii_lowercase();
                !l.starts_with("etag:") && !l.starts_with("last-modified:")
            });
            if let Some(md5) = meta["md5Hash"].as_str().and_then(|m| BASE64.decode(m).ok()) {
                let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
                response.head.push(format!("ETag: \"{hex}\""));
            }
            if let Some(updated) = meta["updated"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            {
                let date = updated.to_utc().format("%a, %d %b %Y %H:%M:%S GMT");
                response.head.push(format!("Last-Modified: {date}"));
            }
            if let Some(generation) = meta["generation"].as_str() {
                response
                    .head
                    .push(format!("x-goog-generation: {generation}"));
            }
        }
        if head_only {
            response.body.clear();
        }
        client.write_all(&response.bytes())?;
    }
    Ok(())
}
