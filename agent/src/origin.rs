//! The origin of a URL (scheme, host and port), the unit credentials are bound to.
//!
//! A registry's credentials, and the bearer tokens they buy, go only to the origin the client
//! was pointed at, never to another one a registry names in an answer (an upload `Location`, a
//! redirect): docker and oras-go look credentials up by the request's own host, and the web's
//! same-origin rule (RFC 6454) adds the scheme and the port, so that an `http://` address on the
//! registry's own host, which anyone on the path can read, gets nothing either.

use std::fmt;
use ureq::http::Uri;

/// `scheme://host:port`, with the host in lower case and the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URL; `None` for anything else.
    pub fn of_url(url: &str) -> Option<Origin> {
        let uri: Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = uri.authority()?;
        // A user name or password in the authority is never ours to send, and a URL carrying
        // one is no origin a registry should name.
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host();
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
        })
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `url` without its query and fragment: what an error message may show of an address a
/// registry gave (an upload `Location` carries the upload's signed state in its query).
pub fn without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> String {
        Origin::of_url(url)
            .map(|o| o.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn an_origin_is_scheme_host_and_port_with_the_default_port_made_explicit() {
        assert_eq!(
            origin("https://Registry.Example/v2/"),
            "https://registry.example:443"
        );
        assert_eq!(
            origin("http://127.0.0.1:5000/v2/a/blobs/uploads/x?y=1"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(origin("https://[::1]:8443/v2/"), "https://[::1]:8443");
        assert_eq!(
            Origin::of_url("https://r.example/v2/"),
            Origin::of_url("https://r.example:443/other")
        );
    }

    #[test]
    fn scheme_host_or_port_changed_is_another_origin() {
        let registry = Origin::of_url("https://r.example:5000/v2/").unwrap();
        for other in [
            "http://r.example:5000/v2/",
            "https://r.example:5001/v2/",
            "https://s.example:5000/v2/",
            "https://r.example.evil:5000/v2/",
        ] {
            assert_ne!(Origin::of_url(other).as_ref(), Some(&registry), "{other}");
        }
    }

    #[test]
    fn relative_urls_other_schemes_and_user_info_have_no_origin() {
        for url in [
            "/v2/a/blobs/uploads/x",
            "ftp://r.example/x",
            "https://alice:s3cret@r.example/v2/",
            "https:///v2/",
            "not a url",
        ] {
            assert!(Origin::of_url(url).is_none(), "{url}");
        }
    }

    #[test]
    fn the_query_is_left_out_of_what_is_shown() {
        assert_eq!(
            without_query("http://h/v2/r/blobs/uploads/u?_state=secret#f"),
            "http://h/v2/r/blobs/uploads/u"
        );
        assert_eq!(without_query("http://h/x"), "http://h/x");
    }
}
