//! Proxies for the WebSocket connection: an HTTP proxy (a `CONNECT` tunnel) or a SOCKS5
//! proxy. Either gives a TCP stream to the server's host and port; TLS (`wss://`) and the
//! WebSocket handshake then run through it as over a direct connection.

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// Largest HTTP response head accepted from a proxy.
const MAX_HEAD: usize = 16 * 1024;

/// Which protocol the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Socks5,
}

/// A configured proxy, parsed and checked by `build()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    kind: Kind,
    /// Host and port of the proxy itself.
    addr: (String, u16),
    /// User name and password from the URL's user info.
    auth: Option<(String, String)>,
}

fn config(url: &str, why: impl std::fmt::Display) -> Error {
    Error::Configuration(format!("bad proxy URL {url:?}: {why}"))
}

fn transport(why: impl std::fmt::Display) -> Error {
    Error::Transport(format!("proxy: {why}"))
}

impl Proxy {
    /// `http://[user:password@]host[:port]` (default port 80) or
    /// `socks5://[user:password@]host[:port]` (default port 1080).
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let (kind, rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
            (Kind::Http, r, 80)
        } else if let Some(r) = url.strip_prefix("socks5://") {
            (Kind::Socks5, r, 1080)
        } else {
            return Err(config(url, "the scheme must be http:// or socks5://"));
        };
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((info, hp)) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                (Some((user.to_owned(), pass.to_owned())), hp)
            }
            None => (None, rest),
        };
        let authority: http::uri::Authority = hostport.parse().map_err(|e| config(url, e))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() || hostport.contains('/') {
            return Err(config(url, "expected host[:port]"));
        }
        // `Authority` drops a port that is not a u16 instead of failing.
        let after_host = hostport.rsplit_once(']').map_or(hostport, |(_, p)| p);
        if after_host.contains(':') && authority.port_u16().is_none() {
            return Err(config(url, "bad port"));
        }
        Ok(Self {
            kind,
            addr: (
                host.to_owned(),
                authority.port_u16().unwrap_or(default_port),
            ),
            auth,
        })
    }

    /// A TCP stream to `host:port` through the proxy.
    pub(crate) async fn tunnel(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let mut tcp = TcpStream::connect((self.addr.0.as_str(), self.addr.1))
            .await
            .map_err(|e| transport(format!("connect to {}:{}: {e}", self.addr.0, self.addr.1)))?;
        match self.kind {
            Kind::Http => self.http_connect(&mut tcp, host, port).await?,
            Kind::Socks5 => self.socks5_connect(&mut tcp, host, port).await?,
        }
        Ok(tcp)
    }

    async fn http_connect(&self, tcp: &mut TcpStream, host: &str, port: u16) -> Result<(), Error> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((user, pass)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.map_err(transport)?;
        // The server sends nothing before the WebSocket request, so everything read until
        // the end of the head belongs to the proxy's answer.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        let end = loop {
            let n = tcp.read(&mut buf).await.map_err(transport)?;
            if n == 0 {
                return Err(transport("closed before answering CONNECT"));
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if head.len() > MAX_HEAD {
                return Err(transport("answer to CONNECT too long"));
            }
        };
        if end != head.len() {
            return Err(transport("data after the answer to CONNECT"));
        }
        let status_line = head
            .split(|b| *b == b'\r')
            .next()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        let ok = status_line
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'));
        if !ok || !status_line.starts_with("HTTP/1.") {
            return Err(transport(format!("CONNECT refused: {status_line}")));
        }
        Ok(())
    }

    async fn socks5_connect(
        &self,
        tcp: &mut TcpStream,
        host: &str,
        port: u16,
    ) -> Result<(), Error> {
        let io = |e: std::io::Error| transport(e);
        let method: u8 = if self.auth.is_some() { 2 } else { 0 };
        tcp.write_all(&[5, 1, method]).await.map_err(io)?;
        let mut choice = [0u8; 2];
        tcp.read_exact(&mut choice).await.map_err(io)?;
        if choice[0] != 5 || choice[1] != method {
            return Err(transport("SOCKS5 proxy refused the authentication method"));
        }
        if let Some((user, pass)) = &self.auth {
            let (u, p) = (user.as_bytes(), pass.as_bytes());
            let (Ok(ul), Ok(pl)) = (u8::try_from(u.len()), u8::try_from(p.len())) else {
                return Err(transport(
                    "SOCKS5 user name or password longer than 255 bytes",
                ));
            };
            let mut msg = vec![1, ul];
            msg.extend_from_slice(u);
            msg.push(pl);
            msg.extend_from_slice(p);
            tcp.write_all(&msg).await.map_err(io)?;
            let mut status = [0u8; 2];
            tcp.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(transport("SOCKS5 authentication failed"));
            }
        }
        let mut req = vec![5, 1, 0];
        match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => {
                req.push(1);
                req.extend_from_slice(&ip.octets());
            }
            Ok(std::net::IpAddr::V6(ip)) => {
                req.push(4);
                req.extend_from_slice(&ip.octets());
            }
            Err(_) => {
                let Ok(len) = u8::try_from(host.len()) else {
                    return Err(transport("host name longer than 255 bytes"));
                };
                req.push(3);
                req.push(len);
                req.extend_from_slice(host.as_bytes());
            }
        }
        req.extend_from_slice(&port.to_be_bytes());
        tcp.write_all(&req).await.map_err(io)?;
        let mut reply = [0u8; 4];
        tcp.read_exact(&mut reply).await.map_err(io)?;
        if reply[0] != 5 {
            return Err(transport("not a SOCKS5 reply"));
        }
        if reply[1] != 0 {
            return Err(transport(format!(
                "SOCKS5 connect failed: {}",
                socks5_reply(reply[1])
            )));
        }
        // The bound address (skipped) and port.
        let skip = match reply[3] {
            1 => 4,
            4 => 16,
            3 => {
                let mut len = [0u8; 1];
                tcp.read_exact(&mut len).await.map_err(io)?;
                usize::from(len[0])
            }
            _ => return Err(transport("bad address type in the SOCKS5 reply")),
        };
        let mut rest = vec![0u8; skip + 2];
        tcp.read_exact(&mut rest).await.map_err(io)?;
        Ok(())
    }
}

/// The meaning of a SOCKS5 reply code (RFC 1928).
fn socks5_reply(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "not allowed by the ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_or_are_refused() {
        let p = Proxy::parse("http://u:p@proxy.example:3128").expect("http");
        assert_eq!(p.kind, Kind::Http);
        assert_eq!(p.addr, ("proxy.example".to_owned(), 3128));
        assert_eq!(p.auth, Some(("u".to_owned(), "p".to_owned())));
        let s = Proxy::parse("socks5://[::1]").expect("socks5");
        assert_eq!(s.kind, Kind::Socks5);
        assert_eq!(s.addr, ("::1".to_owned(), 1080));
        assert_eq!(s.auth, None);
        for bad in [
            "ftp://x:1",
            "http://",
            "http://a b:1",
            "socks5://h:99999",
            "http://h/path",
        ] {
            assert!(
                matches!(Proxy::parse(bad), Err(Error::Configuration(_))),
                "{bad} accepted"
            );
        }
    }
}
