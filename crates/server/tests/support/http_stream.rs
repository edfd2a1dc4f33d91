//! A plain HTTP/1.1 client for the streaming transports: one-shot requests and a streaming
//! response read chunk by chunk (newline-delimited JSON or SSE `data:` lines).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a read waits for something that should arrive.
const WAIT: Duration = Duration::from_secs(10);

/// A raw HTTP/1.1 request; returns the status line's code and the head (lower-cased).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer (413) before taking the whole body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    (status, head)
}

/// An open HTTP-streaming (or SSE) response, read chunk by chunk.
pub struct Stream {
    /// The connection.
    pub tcp: TcpStream,
    /// Raw bytes read and not decoded yet.
    raw: Vec<u8>,
    /// Decoded body bytes not handed out yet.
    body: Vec<u8>,
    ended: bool,
}

impl Stream {
    /// Opens `POST path` with `body` and reads the response head (200 expected).
    pub fn open(addr: &str, path: &str, body: &str) -> Self {
        Self::open_with(addr, "POST", path, body)
    }

    /// Opens `method path` with `body` and reads the response head (200 expected).
    pub fn open_with(addr: &str, method: &str, path: &str, body: &str) -> Self {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(head.as_bytes()).expect("write");
        let mut stream = Self {
            tcp,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
        };
        let deadline = Instant::now() + WAIT;
        let end = loop {
            if let Some(at) = find(&stream.raw, b"\r\n\r\n") {
                break at;
            }
            assert!(Instant::now() < deadline, "no response head");
            stream.read_raw();
        };
        let head = String::from_utf8_lossy(&stream.raw[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        stream.raw.drain(..end + 4);
        stream.decode();
        stream
    }

    /// Reads what is there (waits up to 200 ms) and decodes the complete chunks.
    fn fill(&mut self) {
        self.read_raw();
        self.decode();
    }

    fn read_raw(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        match self.tcp.read(&mut buf) {
            Ok(0) => self.ended = true,
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.ended = true,
        }
    }

    fn decode(&mut self) {
        while let Some(at) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..at])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .expect("chunk size");
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                break;
            }
            if self.raw.len() < at + 2 + size + 2 {
                break;
            }
            self.body
                .extend_from_slice(&self.raw[at + 2..at + 2 + size]);
            self.raw.drain(..at + 2 + size + 2);
        }
    }

    /// The next newline-terminated JSON message; `None` once the response ended.
    pub fn next(&mut self) -> Option<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = self.body.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim().trim_start_matches("data: ");
                if line.is_empty() {
                    continue; // SSE's opening and separating empty lines
                }
                return Some(serde_json::from_str(line).expect("a JSON message"));
            }
            if self.ended {
                return None;
            }
            assert!(Instant::now() < deadline, "nothing arrived");
            self.fill();
        }
    }

    /// Reads until the response ends; the last message.
    pub fn last(&mut self) -> Option<Value> {
        let mut last = None;
        for _ in 0..1000 {
            match self.next() {
                Some(message) => last = Some(message),
                None => return last,
            }
        }
        panic!("the stream did not end");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
