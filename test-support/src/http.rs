//! A small plain-HTTP client of the distribution API, for tests that must see status codes and
//! headers the agent hides (a refused push, an upload session moved between replicas) or that
//! seed a registry without the agent.
//!
//! One request per connection, as HTTP/1.0: the registry then answers with a `Content-Length`
//! or closes the connection, so reading to the end is the whole response.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::BasicAuth;

/// The media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An answer of the registry.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Ok(self)` for a 2xx status, else an error naming `what` and the answer.
    pub fn success(self, what: &str) -> std::io::Result<Response> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(std::io::Error::other(format!(
                "{what}: {} {}",
                self.status,
                self.text()
            )))
        }
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A client of one plain-HTTP registry, anonymous or with basic credentials.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    /// The `Authorization` header's value.
    authorization: Option<String>,
}

impl Client {
    /// An anonymous client of the registry at `addr`.
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            authorization: None,
        }
    }

    /// The same client sending these basic credentials.
    pub fn with_basic_auth(mut self, auth: &BasicAuth) -> Client {
        let pair = format!("{}:{}", auth.user, auth.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.authorization = Some(format!("Basic {encoded}"));
        self
    }

    /// The same client sending this bearer token (of a token-auth registry).
    pub fn with_bearer(mut self, token: &str) -> Client {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    /// Sends one request; `target` is a path with its query, or an absolute URL on this
    /// registry (a `Location` header as the registry returns it).
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let path = match target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => target,
        };
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(authorization) = &self.authorization {
            head.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        // One write: a server that answers before reading the body (distribution v3 refusing
        // an upload session it cannot verify) and closes would otherwise meet a body sent after
        // its answer, and its kernel's reset can discard that answer before it is read.
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse_response(&raw)
    }

    /// Uploads `data` as a blob of `repository` in two steps (`POST`, then `PUT` with the
    /// digest), and returns its digest.
    pub fn push_blob(&self, repository: &str, data: &[u8]) -> std::io::Result<String> {
        let digest = sha256_digest(data);
        let session = self.start_upload(repository)?;
        self.request(
            "PUT",
            &with_query(&session, &format!("digest={digest}")),
            &[("Content-Type", "application/octet-stream")],
            data,
        )?
        .success("finish the blob upload")?;
        Ok(digest)
    }

    /// Starts an upload session of `repository` and returns its `Location`.
    pub fn start_upload(&self, repository: &str) -> std::io::Result<String> {
        let started = self
            .request(
                "POST",
                &format!("/v2/{repository}/blobs/uploads/"),
                &[],
                b"",
            )?
            .success("start a blob upload")?;
        started
            .header("location")
            .map(str::to_string)
            .ok_or_else(|| std::io::Error::other("an upload session without a Location"))
    }

    /// Stores `manifest` (an OCI image manifest) under `reference` (a tag or a digest).
    pub fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &[u8],
    ) -> std::io::Result<()> {
        self.request(
            "PUT",
            &format!("/v2/{repository}/manifests/{reference}"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest,
        )?
        .success("store the manifest")
        .map(drop)
    }

    /// Pushes an artifact as `oras push` writes one: the empty config, one layer per file
    /// titled by `org.opencontainers.image.title`. Returns the layers' digests.
    pub fn push_artifact(
        &self,
        repository: &str,
        tag: &str,
        files: &[(&str, &[u8])],
    ) -> std::io::Result<Vec<String>> {
        let config = self.push_blob(repository, b"{}")?;
        let mut layers = Vec::new();
        let mut digests = Vec::new();
        for (name, data) in files {
            let digest = self.push_blob(repository, data)?;
            layers.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{},"annotations":{{"org.opencontainers.image.title":"{name}"}}}}"#,
                data.len()
            ));
            digests.push(digest);
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.oras-cache.test","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[{}]}}"#,
            layers.join(",")
        );
        self.push_manifest(repository, tag, manifest.as_bytes())?;
        Ok(digests)
    }

    /// `GET` of the manifest `reference` of `repository`, accepting OCI manifests.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> std::io::Result<Response> {
        self.request(
            "GET",
            &format!("/v2/{repository}/manifests/{reference}"),
            &[("Accept", OCI_MANIFEST)],
            b"",
        )
    }

    /// `GET` of the blob `digest` of `repository`.
    pub fn get_blob(&self, repository: &str, digest: &str) -> std::io::Result<Response> {
        self.request("GET", &format!("/v2/{repository}/blobs/{digest}"), &[], b"")
    }
}

/// The value of header `name` (case-insensitive) among `headers`, if present.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A chunked blob upload to `repository` started on `first` (its first half as one `PATCH`) and
/// finished on `second` (the rest with the closing `PUT`): the way two replicas behind one Service
/// see it. The final answer's status and body; replicas sharing storage and `http.secret` give 201.
pub fn upload_across(
    first: std::net::SocketAddr,
    second: std::net::SocketAddr,
    repository: &str,
    data: &[u8],
) -> std::io::Result<(u16, String)> {
    let (head, tail) = data.split_at(data.len() / 2);
    let one = Client::new(first);
    let session = one.start_upload(repository)?;
    let range = format!("0-{}", head.len() - 1);
    let patched = one
        .request(
            "PATCH",
            &session,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            head,
        )?
        .success("upload the first chunk")?;
    let session = patched
        .header("location")
        .ok_or_else(|| std::io::Error::other("the PATCH answer names no upload location"))?
        .to_string();
    let finished = Client::new(second).request(
        "PUT",
        &with_query(&session, &format!("digest={}", sha256_digest(data))),
        &[("Content-Type", "application/octet-stream")],
        tail,
    )?;
    Ok((finished.status, finished.text()))
}

/// `target` with `query` appended (`?` or `&`).
pub fn with_query(target: &str, query: &str) -> String {
    let separator = if target.contains('?') { '&' } else { '?' };
    format!("{target}{separator}{query}")
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("an answer without a complete head"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("a bad status line: {head}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_the_sha256_of_the_bytes() {
        // The empty config's digest, as the OCI image spec gives it.
        assert_eq!(
            sha256_digest(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn a_response_is_split_into_status_headers_and_body() {
        let response =
            parse_response(b"HTTP/1.0 202 Accepted\r\nLocation: /v2/x?a=1\r\n\r\nbody").unwrap();
        assert_eq!(response.status, 202);
        assert_eq!(response.header("LOCATION"), Some("/v2/x?a=1"));
        assert_eq!(response.body, b"body");
        assert_eq!(with_query("/v2/x?a=1", "b=2"), "/v2/x?a=1&b=2");
        assert_eq!(with_query("/v2/x", "b=2"), "/v2/x?b=2");
    }
}
