//! Truly simultaneous requests. Threads or tasks that each send a request only overlap by luck:
//! the first is often answered before the last is sent, and races in the server go unseen. Here
//! every request travels on its own TCP connection and is written whole except its last byte; only
//! when all of them are written do the last bytes go out, one after another in a tight loop, so the
//! server holds N complete requests within microseconds of each other and must serve them at once.
//! Then every answer is read back, in the order the requests were given.
//!
//! The requests are plain HTTP/1.1 written by hand (`Connection: close`, so an answer ends where
//! its connection does); answers are read with `httparse`, the parser hyper itself uses.

use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 request for [`simultaneously`].
#[derive(Debug, Clone)]
pub struct Request {
    /// The server it goes to (two instances sharing a database can be raced against each other).
    pub addr: SocketAddr,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A `POST` of `body` as JSON.
    pub fn post_json(addr: SocketAddr, path: &str, body: &impl Serialize) -> Self {
        Self {
            addr,
            method: "POST",
            path: path.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("a request body serializes"),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A till's `POST` (bearer token and `X-Till-Id`), e.g. to `/v1/till/refunds`.
    pub fn till(addr: SocketAddr, till_id: &str, path: &str, body: &impl Serialize) -> Self {
        Self::post_json(addr, path, body)
            .header("authorization", &format!("Bearer {}", crate::TILL_TOKEN))
            .header("x-till-id", till_id)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.method,
            self.path,
            self.addr,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as `T`; panics (a test failure) naming the status and body when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not the expected JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error code of a refusal (`None` for a success).
    pub fn error_code(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let body: loyalty_core::api::ErrorBody = self.json();
        Some(body.error.code)
    }
}

/// The one answer every copy of a request raced with one key got: each a `200` with the same
/// JSON body as the first (a test failure otherwise), which it returns.
pub fn one_answer<T: DeserializeOwned + PartialEq + std::fmt::Debug>(answers: &[Response]) -> T {
    let first: T = answers
        .first()
        .unwrap_or_else(|| panic!("no answers"))
        .json();
    for a in answers {
        assert_eq!(a.status, 200);
        assert_eq!(a.json::<T>(), first, "every answer is the first");
    }
    first
}

#[derive(Debug, thiserror::Error)]
pub enum RaceError {
    #[error("connection {index}: {source}")]
    Io {
        index: usize,
        source: std::io::Error,
    },
    #[error("connection {index}: the answer is not HTTP/1.1: {message}")]
    BadAnswer { index: usize, message: String },
}

/// Sends every request so that the server receives them at the same instant (see the module's
/// description) and returns the answers in the order of `requests`.
pub async fn simultaneously(requests: &[Request]) -> Result<Vec<Response>, RaceError> {
    let mut streams = Vec::with_capacity(requests.len());
    for (index, r) in requests.iter().enumerate() {
        let io = |source| RaceError::Io { index, source };
        let mut stream = TcpStream::connect(r.addr).await.map_err(io)?;
        // The last byte must leave at once, not wait for the previous segment's acknowledgement.
        stream.set_nodelay(true).map_err(io)?;
        let bytes = r.to_bytes();
        let (most, last) = bytes.split_at(bytes.len() - 1);
        stream.write_all(most).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        streams.push((stream, last[0]));
    }
    // Every request is written but for one byte: release them all together.
    for (index, (stream, last)) in streams.iter_mut().enumerate() {
        stream
            .write_all(&[*last])
            .await
            .map_err(|source| RaceError::Io { index, source })?;
    }
    let mut answers = Vec::with_capacity(streams.len());
    for (index, (mut stream, _)) in streams.into_iter().enumerate() {
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|source| RaceError::Io { index, source })?;
        answers.push(parse(&raw).map_err(|message| RaceError::BadAnswer { index, message })?);
    }
    Ok(answers)
}

/// An answer read to the end of its connection: status line and headers, then the body as its
/// `content-length` or chunked transfer encoding says.
fn parse(raw: &[u8]) -> Result<Response, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let body_at = match head.parse(raw).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err(format!("{} bytes, head incomplete", raw.len())),
    };
    let status = head.code.ok_or("no status code")?;
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let rest = &raw[body_at..];
    let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.trim().parse().map_err(|_| "bad content-length")?;
        rest.get(..length)
            .ok_or_else(|| format!("body of {} bytes, {length} announced", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let (size, after) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((n, size))) => (size, n),
            _ => return Err("bad chunk size".into()),
        };
        let size = usize::try_from(size).map_err(|_| "chunk too large")?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest
            .get(after..after + size)
            .ok_or("chunk cut short by the end of the connection")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(after + size + 2..)
            .ok_or("chunk without its CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_with_a_length_or_in_chunks() {
        let plain = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (200, &b"{}"[..]));
        let chunked = parse(
            b"HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (chunked.status, chunked.body.as_slice()),
            (409, &b"abcde"[..])
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").is_err());
    }
}
