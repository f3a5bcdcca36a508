//! A loopback HTTP/1.1 proxy in front of moto that loses answers on request: the
//! request reaches moto and is applied, and the client gets a `500` instead of moto's
//! answer, as when a response is lost in transit. The SDK then sends the request again.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The proxy; it stops serving when dropped (its threads end with their connections).
pub struct LostAnswers {
    port: u16,
    /// The `X-Amz-Target` operation (`PutItem`) whose next answer is lost.
    lose: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<usize>>,
}

impl LostAnswers {
    /// A proxy to moto at `upstream` (`http://127.0.0.1:<port>`).
    pub fn start(upstream: &str) -> LostAnswers {
        let upstream: u16 = upstream
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("moto's endpoint ends with its port");
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a port for the proxy");
        let port = listener.local_addr().unwrap().port();
        let lose = Arc::new(Mutex::new(None));
        let lost = Arc::new(Mutex::new(0));
        let (l, n) = (lose.clone(), lost.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (l, n) = (l.clone(), n.clone());
                std::thread::spawn(move || serve(client, upstream, &l, &n));
            }
        });
        LostAnswers { port, lose, lost }
    }

    /// Where clients connect.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Loses the answer to the next request of `operation` (`PutItem`).
    pub fn lose_next(&self, operation: &str) {
        *self.lose.lock().unwrap() = Some(operation.to_owned());
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> usize {
        *self.lost.lock().unwrap()
    }
}

/// One request or response: the head (start line and headers, as sent) and the body.
fn read_message(reader: &mut impl BufRead) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

fn serve(client: TcpStream, upstream: u16, lose: &Mutex<Option<String>>, lost: &Mutex<usize>) {
    let mut reader = BufReader::new(client.try_clone().expect("clone the client stream"));
    let mut writer = client;
    while let Ok(Some((head, body))) = read_message(&mut reader) {
        let operation = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-target").then(|| {
                value
                    .trim()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        });
        // One connection per request upstream, closed by moto after its answer.
        let head_upstream = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let answer = TcpStream::connect(("127.0.0.1", upstream)).and_then(|mut up| {
            up.write_all(head_upstream.as_bytes())?;
            up.write_all(&body)?;
            let mut answer = Vec::new();
            up.read_to_end(&mut answer)?;
            Ok(answer)
        });
        let Ok(mut answer) = answer else { break };
        {
            let mut lose = lose.lock().unwrap();
            if operation.is_some() && *lose == operation {
                *lose = None;
                *lost.lock().unwrap() += 1;
                let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"the answer was lost"}"#;
                answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes();
            }
        }
        if writer.write_all(&answer).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}
