//! Fake servers for hostile behaviour the real registry cannot show: a listener that records
//! what a client sends it (a token realm that should receive nothing), and a minimal registry
//! whose blobs stall in the ways a broken network or a hostile registry stalls.
//!
//! Both speak just enough HTTP/1.1 for the agent: one request per connection, answered with
//! `Connection: close`, so every blob request arrives on a fresh connection.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as a server received it.
#[derive(Debug, Clone, Default)]
pub struct ReceivedRequest {
    /// The request line, such as `GET /token?scope=... HTTP/1.1`.
    pub request_line: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// Every byte received on the connection, headers included.
    pub raw: Vec<u8>,
}

impl ReceivedRequest {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }
}

/// Accepts connections in a thread and hands each to `handle` in its own thread, until dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub(crate) fn start(
        handle: impl Fn(TcpStream, &AtomicBool) + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handle = handle.clone();
                let stopping = stopping.clone();
                std::thread::spawn(move || handle(stream, &stopping));
            }
        });
        Ok(Server { addr, stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Reads one request head (up to the blank line) from `stream`, and what follows it within
/// 100 ms when `with_body` (a fake that serves uploads reads the body itself).
pub(crate) fn read_request(
    stream: &TcpStream,
    with_body: bool,
) -> std::io::Result<ReceivedRequest> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // Byte by byte, so that nothing of a body is read ahead and lost to whoever reads it next.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if (&*stream).read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let mut request = ReceivedRequest {
        request_line: lines.next().unwrap_or("").trim_end().to_string(),
        raw: head,
        ..Default::default()
    };
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request
                .headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !with_body {
        return Ok(request);
    }
    // Anything a client sent after the head (a body) is recorded too, briefly.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut rest = Vec::new();
    let _ = (&*stream).read_to_end(&mut rest);
    request.raw.extend_from_slice(&rest);
    Ok(request)
}

pub(crate) fn respond(
    mut stream: &TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// A listener that records every request it receives and answers each with a fixed response:
/// a stand-in for a token realm that a client must never contact.
pub struct RecordingServer {
    server: Server,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
}

impl RecordingServer {
    /// Starts on a free loopback port; every request is answered `status` with `body`.
    pub fn start(status: &'static str, body: &'static str) -> std::io::Result<RecordingServer> {
        let received: Arc<Mutex<Vec<ReceivedRequest>>> = Arc::default();
        let seen = received.clone();
        let server = Server::start(move |stream, _| {
            if let Ok(request) = read_request(&stream, true) {
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(request);
                let _ = respond(
                    &stream,
                    status,
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
            }
        })?;
        Ok(RecordingServer { server, received })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How the fake registry answers `GET` on one blob.
#[derive(Debug, Clone)]
pub enum BlobBehaviour {
    /// Serves the bytes at once.
    Serve(Vec<u8>),
    /// Reads the request and never answers (the connection stays open).
    Silent,
    /// Sends the headers announcing these bytes, then one byte every `every`.
    Trickle {
        /// The blob.
        bytes: Vec<u8>,
        /// The pause before each byte.
        every: Duration,
    },
    /// Sends the headers announcing `len` bytes, then nothing (the connection stays open).
    HeadersOnly {
        /// The announced `Content-Length`.
        len: u64,
    },
}

/// How the fake registry takes a blob upload (`POST .../blobs/uploads/` then `PUT` with the
/// body).
#[derive(Debug, Clone, Copy)]
pub enum UploadBehaviour {
    /// Uploads are refused with 404 (a pull-only registry).
    Refuse,
    /// Reads the whole body and answers 201.
    Accept,
    /// Accepts uploads of at most `above` bytes; reads a larger body a byte every `every` and
    /// never answers.
    SlowRead {
        /// The largest upload taken normally (small blobs such as the config go through).
        above: u64,
        /// The pause before each byte.
        every: Duration,
    },
}

/// A minimal plain-HTTP registry that serves one manifest under any tag of any repository, and
/// blobs by digest with a [`BlobBehaviour`] each. `GET /v2/` answers 200; anything unknown 404.
pub struct FakeRegistry {
    server: Server,
    blob_requests: Arc<Mutex<Vec<String>>>,
    upload_requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeRegistry {
    /// Starts on a free loopback port. `manifest` is served with `media_type`; `blobs` maps a
    /// digest (`sha256:<hex>`) to its behaviour.
    pub fn start(
        manifest: Vec<u8>,
        media_type: &str,
        blobs: HashMap<String, BlobBehaviour>,
    ) -> std::io::Result<FakeRegistry> {
        Self::start_with_uploads(manifest, media_type, blobs, UploadBehaviour::Refuse)
    }

    /// [`FakeRegistry::start`], taking blob uploads as `uploads` says; manifests pushed are
    /// answered 201 (and not kept).
    pub fn start_with_uploads(
        manifest: Vec<u8>,
        media_type: &str,
        blobs: HashMap<String, BlobBehaviour>,
        uploads: UploadBehaviour,
    ) -> std::io::Result<FakeRegistry> {
        let media_type = media_type.to_string();
        let blob_requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = blob_requests.clone();
        let upload_requests: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let uploads_seen = upload_requests.clone();
        let server = Server::start(move |stream, stop| {
            let Ok(request) = read_request(&stream, false) else {
                return;
            };
            let mut parts = request.request_line.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("").to_string();
            if path.contains("/blobs/uploads/") {
                uploads_seen.fetch_add(1, Ordering::SeqCst);
                serve_upload(&stream, stop, method, &path, &request, uploads);
                return;
            }
            if method == "PUT" && path.contains("/manifests/") {
                let length: usize = request
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = (&stream).read_exact(&mut body);
                let _ = respond(&stream, "201 Created", &[], b"");
                return;
            }
            let head_only = method == "HEAD";
            let body = |bytes: &[u8]| -> Vec<u8> {
                if head_only {
                    Vec::new()
                } else {
                    bytes.to_vec()
                }
            };
            if path == "/v2/" {
                let _ = respond(&stream, "200 OK", &[], b"{}");
            } else if path.contains("/manifests/") {
                let _ = respond(
                    &stream,
                    "200 OK",
                    &[("Content-Type", &media_type)],
                    &body(&manifest),
                );
            } else if let Some((_, digest)) = path.split_once("/blobs/") {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(digest.to_string());
                match blobs.get(digest) {
                    None => {
                        let _ = respond(&stream, "404 Not Found", &[], b"{}");
                    }
                    Some(BlobBehaviour::Serve(bytes)) => {
                        let _ = respond(
                            &stream,
                            "200 OK",
                            &[("Content-Type", "application/octet-stream")],
                            &body(bytes),
                        );
                    }
                    Some(BlobBehaviour::Silent) => hold(&stream, stop),
                    Some(BlobBehaviour::HeadersOnly { len }) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                        );
                        if (&stream).write_all(head.as_bytes()).is_ok() {
                            hold(&stream, stop);
                        }
                    }
                    Some(BlobBehaviour::Trickle { bytes, every }) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            bytes.len()
                        );
                        if (&stream).write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        for byte in bytes {
                            std::thread::sleep(*every);
                            if stop.load(Ordering::SeqCst) || (&stream).write_all(&[*byte]).is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            } else {
                let _ = respond(&stream, "404 Not Found", &[], b"{}");
            }
        })?;
        Ok(FakeRegistry {
            server,
            blob_requests,
            upload_requests,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// How many upload requests (`POST` and `PUT` of `.../blobs/uploads/`) arrived so far.
    pub fn upload_requests(&self) -> usize {
        self.upload_requests.load(Ordering::SeqCst)
    }

    /// The digests of every blob request so far (one per attempt).
    pub fn blob_requests(&self) -> Vec<String> {
        self.blob_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `POST .../blobs/uploads/` and the `PUT` that follows, as `uploads` says.
fn serve_upload(
    stream: &TcpStream,
    stop: &AtomicBool,
    method: &str,
    path: &str,
    request: &ReceivedRequest,
    uploads: UploadBehaviour,
) {
    if matches!(uploads, UploadBehaviour::Refuse) {
        let _ = respond(stream, "404 Not Found", &[], b"{}");
        return;
    }
    if method == "POST" {
        let location = format!("{}session", path.split('?').next().unwrap_or(path));
        let _ = respond(stream, "202 Accepted", &[("Location", &location)], b"");
        return;
    }
    let length: u64 = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match uploads {
        UploadBehaviour::SlowRead { above, every } if length > above => {
            read_until_closed(stream, stop, 1, every);
        }
        _ => {
            let _ = std::io::copy(&mut stream.take(length), &mut std::io::sink());
            let _ = respond(stream, "201 Created", &[], b"");
        }
    }
}

/// Keeps a connection open without answering until the client closes it or the server stops.
fn hold(stream: &TcpStream, stop: &AtomicBool) {
    read_until_closed(stream, stop, 256, Duration::ZERO);
}

/// Reads at most `chunk` bytes every `pause` and throws them away, until the client closes the
/// connection or the server stops: a peer that never answers, or one that reads very slowly.
fn read_until_closed(stream: &TcpStream, stop: &AtomicBool, chunk: usize, pause: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; chunk];
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(pause);
        match (&*stream).read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(host: &str, request: &str) -> String {
        let mut stream = TcpStream::connect(host).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn the_recording_server_keeps_what_it_was_sent() {
        let server = RecordingServer::start("401 Unauthorized", "{}").unwrap();
        let answer = exchange(
            &server.host(),
            "GET /token?scope=x HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        let received = server.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].request_line, "GET /token?scope=x HTTP/1.1");
        assert_eq!(received[0].header("Authorization"), Some("Basic YTpi"));
    }

    #[test]
    fn the_fake_registry_serves_its_manifest_and_blobs_and_counts_blob_requests() {
        let blobs = HashMap::from([(
            "sha256:aa".to_string(),
            BlobBehaviour::Serve(b"hi".to_vec()),
        )]);
        let registry = FakeRegistry::start(b"{}".to_vec(), "application/json", blobs).unwrap();
        let host = registry.host();
        assert!(exchange(&host, "GET /v2/ HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        let manifest = exchange(&host, "GET /v2/r/manifests/t HTTP/1.1\r\n\r\n");
        assert!(manifest.contains("Content-Type: application/json") && manifest.ends_with("{}"));
        assert!(exchange(&host, "GET /v2/r/blobs/sha256:aa HTTP/1.1\r\n\r\n").ends_with("hi"));
        assert!(
            exchange(&host, "GET /v2/r/blobs/sha256:bb HTTP/1.1\r\n\r\n")
                .starts_with("HTTP/1.1 404")
        );
        assert_eq!(registry.blob_requests(), ["sha256:aa", "sha256:bb"]);
    }
}
