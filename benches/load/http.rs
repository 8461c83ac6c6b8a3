//! The load generator's HTTP/1.1 client: one keep-alive TCP connection, requests written as
//! pre-built bytes, answers read with just enough parsing to get the status, the body and the
//! error `code`.
//!
//! The client shares the machine's cores with the server, so every microsecond it spends is
//! taken from the figures it reports; a general client (URL parsing, header maps, pools) costs
//! several times what writing prepared bytes does. Only what linli's server sends is understood:
//! `Content-Length` or chunked bodies, `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request as it goes on the wire; cheap to clone, so identical requests share one buffer.
pub type Wire = Arc<[u8]>;

/// Builds the bytes of one request. `path` includes the query.
pub fn request(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Wire {
    let mut out = Vec::with_capacity(128 + path.len() + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.into()
}

/// An answer: the status and the body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The `code` of a `{code, message, request_id}` error body, found without a JSON parser.
    pub fn error_code(&self) -> Option<&str> {
        let needle = b"\"code\":\"";
        let at = self.body.windows(needle.len()).position(|w| w == needle)? + needle.len();
        let len = self.body[at..].iter().position(|b| *b == b'"')?;
        std::str::from_utf8(&self.body[at..at + len]).ok()
    }
}

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    Connect,
    /// The server closed the connection, or it broke, before the answer was complete.
    Closed,
    Timeout,
    Malformed,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect failed",
            Failure::Closed => "connection closed",
            Failure::Timeout => "timeout",
            Failure::Malformed => "malformed answer",
        }
    }
}

/// One keep-alive connection; it reconnects on the next request after a failure or a close.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened, the first included.
    pub connects: u64,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Conn { addr, stream: None, buf: Vec::with_capacity(16 * 1024), connects: 0 }
    }

    pub async fn connect(&mut self) -> Result<(), Failure> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await.map_err(|_| Failure::Connect)?;
            stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
            self.stream = Some(stream);
            self.buf.clear();
            self.connects += 1;
        }
        Ok(())
    }

    /// Drops the connection (after a timeout its state is unknown).
    pub fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
    }

    pub async fn send(&mut self, wire: &[u8]) -> Result<Answer, Failure> {
        self.connect().await?;
        let result = self.exchange(wire).await;
        if !matches!(result, Ok((_, true))) {
            self.reset();
        }
        result.map(|(answer, _)| answer)
    }

    /// Writes the request and reads one answer; answers whether the connection stays open.
    async fn exchange(&mut self, wire: &[u8]) -> Result<(Answer, bool), Failure> {
        let Conn { stream, buf, .. } = self;
        let stream = stream.as_mut().ok_or(Failure::Closed)?;
        stream.write_all(wire).await.map_err(|_| Failure::Closed)?;
        let head_end = loop {
            if let Some(at) = find(buf, b"\r\n\r\n") {
                break at + 4;
            }
            read_more(stream, buf).await?;
        };
        let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Failure::Malformed)?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or(Failure::Malformed)?;
        let status: u16 = status_line.get(9..12).and_then(|s| s.parse().ok()).ok_or(Failure::Malformed)?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| Failure::Malformed)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep = !value.eq_ignore_ascii_case("close");
            }
        }
        buf.drain(..head_end);
        let body = if chunked {
            read_chunked(stream, buf).await?
        } else {
            let n = length.unwrap_or(0);
            while buf.len() < n {
                read_more(stream, buf).await?;
            }
            buf.drain(..n).collect()
        };
        Ok((Answer { status, body }, keep))
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Failure> {
    buf.reserve(8 * 1024);
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => Err(Failure::Closed),
        Ok(_) => Ok(()),
    }
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(buf, b"\r\n") {
                break at;
            }
            read_more(stream, buf).await?;
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).map_err(|_| Failure::Malformed)?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Failure::Malformed)?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            loop {
                if let Some(at) = find(buf, b"\r\n") {
                    buf.drain(..at + 2);
                    if at == 0 {
                        return Ok(body);
                    }
                } else {
                    read_more(stream, buf).await?;
                }
            }
        }
        while buf.len() < size + 2 {
            read_more(stream, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
