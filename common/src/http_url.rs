//! An `http://` or `https://` URL as this project's HTTP clients take it from a flag (the
//! proxy's lookup URLs, the OAuth introspection endpoint): host, port, path and query,
//! each checked so that what was accepted can be connected to and sent in a request line.
//! Errors quote the URL, except one carrying credentials, which is refused without
//! repeating them.

use std::net::Ipv6Addr;

/// `http://host[:port][/path][?query]` or `https://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`.
    pub tls: bool,
    /// The host as the Host header and logs show it (IPv6 literals in brackets).
    pub host: String,
    /// The port (80 or 443 when not given).
    pub port: u16,
    /// The path and query, as sent in the request line (`/` at least).
    pub path: String,
}

/// Why a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// `user:password@` in the URL: it would show wherever the URL is logged.
    #[error("must not carry credentials")]
    Credentials,
    /// Neither `http://` nor `https://`.
    #[error("`{0}` is not an http:// or https:// URL")]
    Scheme(String),
    /// No host, or a bad one (a name must be ASCII: its IDNA form).
    #[error("`{0}` has no usable host")]
    Host(String),
    /// A port that is not 1..=65535.
    #[error("`{0}` has a bad port")]
    Port(String),
    /// A path that cannot be sent in a request line, or a fragment.
    #[error("`{0}` has a path that cannot be sent")]
    Path(String),
}

impl std::str::FromStr for HttpUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(UrlError::Scheme(s.to_string()));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let bad_host = || UrlError::Host(s.to_string());
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(bad_host)?;
            ip.parse::<Ipv6Addr>().map_err(|_| bad_host())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
            };
            (&authority[..ip.len() + 2], port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        // Sent as the Host header, so visible ASCII only (a non-ASCII name must be given
        // in its IDNA form, as nginx needs too).
        if host.is_empty()
            || !host
                .bytes()
                .all(|c| c.is_ascii_graphic() && !b"@?#/".contains(&c))
        {
            return Err(bad_host());
        }
        // The request path as hyper sends it: what it cannot parse would not be sent.
        if path.contains('#') || path.parse::<hyper::Uri>().is_err() {
            return Err(UrlError::Path(s.to_string()));
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| UrlError::Port(s.to_string()))?,
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

impl HttpUrl {
    /// `host:port`, for logs and error messages.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The host to connect to and to verify the certificate against (IPv6 literals
    /// without brackets).
    pub fn server_name(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The Host header as RFC 9110 has it: the port only when it is not the scheme's.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            self.authority()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> HttpUrl {
        s.parse().unwrap()
    }

    #[test]
    fn good_urls() {
        let u = parse("http://10.0.0.7:7072/service/extension/nginx-lookup");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "10.0.0.7", 7072, "/service/extension/nginx-lookup")
        );
        assert_eq!(u.authority(), "10.0.0.7:7072");
        assert_eq!(u.host_header(), "10.0.0.7:7072");
        assert_eq!(parse("http://lookup").authority(), "lookup:80");
        let s = parse("https://idp.example.com/oauth2/introspect");
        assert_eq!((s.tls, s.port), (true, 443));
        assert_eq!(
            (s.server_name(), s.host_header().as_str()),
            ("idp.example.com", "idp.example.com")
        );
        let v6 = parse("http://[::1]:9000/i?realm=x");
        assert_eq!((v6.server_name(), v6.host.as_str()), ("::1", "[::1]"));
        assert_eq!((v6.port, v6.path.as_str()), (9000, "/i?realm=x"));
        assert_eq!(parse("https://[fe80::1]/x").authority(), "[fe80::1]:443");
        assert_eq!(parse("http://idp?x=1").path, "/?x=1");
        assert_eq!(parse("http://127.0.0.1:8080").path, "/");
        assert!("http://h/x?a=1&b=%20".parse::<HttpUrl>().is_ok());
        assert_eq!(parse("https://h:8443/p").to_string(), "https://h:8443/p");
    }

    #[test]
    fn bad_urls_name_their_fault() {
        let bad = |u: &str| u.parse::<HttpUrl>().unwrap_err();
        assert_eq!(bad("ftp://x/"), UrlError::Scheme("ftp://x/".into()));
        assert_eq!(bad("x:1/"), UrlError::Scheme("x:1/".into()));
        for creds in ["https://user:pw@idp/x", "http://user@h/"] {
            assert_eq!(bad(creds), UrlError::Credentials, "{creds}");
            assert!(!bad(creds).to_string().contains("pw"));
        }
        for host in [
            "http:///x",
            "http://:80/",
            "http://[::1/",
            "http://[nope]:80/",
            "http://[::1]80/",
            "http://a b/",
            "http://::1/",
            "http://l\u{f6}okup/",
        ] {
            assert_eq!(bad(host), UrlError::Host(host.into()), "{host}");
        }
        for path in [
            "http://h/a b",
            "http://h:1/a\x7fb",
            "http://h/a\tb",
            "http://idp/a#frag",
        ] {
            assert_eq!(bad(path), UrlError::Path(path.into()), "{path}");
        }
        for port in [
            "http://h:/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:x/",
            "http://[::1]:99999/",
        ] {
            assert_eq!(bad(port), UrlError::Port(port.into()), "{port}");
        }
    }
}
