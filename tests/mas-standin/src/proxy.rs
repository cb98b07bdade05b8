//! The PROXY protocol v1 (haproxy's proxy-protocol.txt, section 2.1) on
//! listeners with `proxy_protocol: true`, as MAS reads it.
//!
//! MAS requires the header on every connection of such a listener: it reads
//! until a CRLF within the first 108 bytes, takes `PROXY TCP4|TCP6|UDP4|UDP6
//! <src> <dst> <sport> <dport>` or `PROXY UNKNOWN ...`, keeps whatever
//! followed the CRLF for HTTP, and closes the connection when the header is
//! missing, malformed or not complete within 5 s. The source address of the
//! header is then the client's address, whatever `trusted_proxies` says.
//! Version 2 (binary) is not read, as MAS does not read it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// MAS's limit for the whole handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest v1 header, CRLF included.
const MAX_HEADER: usize = 108;

/// What a PROXY header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// TCP or UDP over IPv4 or IPv6: the client's and the proxy's addresses.
    Inet { source: SocketAddr },
    /// `PROXY UNKNOWN`: the proxy does not know (say, a Unix socket client).
    Unknown,
}

/// Parses one header line (without its CRLF).
///
/// # Errors
///
/// The reason the line is not a v1 header.
pub(crate) fn parse_line(line: &[u8]) -> Result<Header, String> {
    // Split as bytes, and each field read as text only when it is used: MAS
    // reads nothing after `UNKNOWN`, whatever the bytes.
    let mut fields = line.splitn(6, |b| *b == b' ');
    if fields.next() != Some(b"PROXY") {
        return Err("no `PROXY` preamble".to_owned());
    }
    let family = fields.next().ok_or("no protocol")?;
    let v6 = match family {
        b"TCP4" | b"UDP4" => false,
        b"TCP6" | b"UDP6" => true,
        b"UNKNOWN" => return Ok(Header::Unknown),
        other => {
            return Err(format!(
                "unknown protocol {:?}",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let family = std::str::from_utf8(family).expect("one of the names above");
    let mut next = |what: &str| {
        let field = fields.next().ok_or_else(|| format!("no {what}"))?;
        std::str::from_utf8(field).map_err(|_| format!("{what} is not UTF-8"))
    };
    let source: IpAddr = next("source address")?
        .parse()
        .map_err(|_| "bad source address".to_owned())?;
    let destination: IpAddr = next("destination address")?
        .parse()
        .map_err(|_| "bad destination address".to_owned())?;
    let sport: u16 = next("source port")?
        .parse()
        .map_err(|_| "bad source port".to_owned())?;
    let _dport: u16 = next("destination port")?
        .parse()
        .map_err(|_| "bad destination port".to_owned())?;
    if fields.next().is_some() {
        return Err("too many fields".to_owned());
    }
    if source.is_ipv6() != v6 || destination.is_ipv6() != v6 {
        return Err(format!("addresses do not match {family}"));
    }
    Ok(Header::Inet {
        source: SocketAddr::new(source, sport),
    })
}

/// Reads the header from `stream`; returns it and the bytes read past it.
///
/// # Errors
///
/// The stream ended or failed first, or the header is malformed.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Header, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(MAX_HEADER);
    loop {
        if let Some(end) = buf
            .windows(2)
            .take(MAX_HEADER - 1)
            .position(|w| w == b"\r\n")
        {
            let header = parse_line(&buf[..end])?;
            return Ok((header, buf[end + 2..].to_vec()));
        }
        if buf.len() >= MAX_HEADER {
            return Err(format!("no CRLF in the first {MAX_HEADER} bytes"));
        }
        let mut chunk = [0u8; MAX_HEADER];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the header: {e}"))?;
        if n == 0 {
            return Err(format!("the connection ended after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A stream that first yields bytes already read from it.
pub(crate) struct Rewind<S> {
    pending: Vec<u8>,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(pending: Vec<u8>, inner: S) -> Self {
        Self { pending, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.remaining());
            buf.put_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_parse_as_mas_parses_them() {
        assert_eq!(
            parse_line(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443"),
            Ok(Header::Inet {
                source: "203.0.113.7:5555".parse().unwrap()
            })
        );
        assert_eq!(
            parse_line(b"PROXY TCP6 2001:db8::7 ::1 5555 443"),
            Ok(Header::Inet {
                source: "[2001:db8::7]:5555".parse().unwrap()
            })
        );
        assert_eq!(parse_line(b"PROXY UNKNOWN"), Ok(Header::Unknown));
        assert_eq!(
            parse_line(b"PROXY UNKNOWN whatever follows"),
            Ok(Header::Unknown)
        );
        // MAS reads the fields as bytes: what follows UNKNOWN is not read.
        assert_eq!(parse_line(b"PROXY UNKNOWN \xff\xfe"), Ok(Header::Unknown));
        for bad in [
            &b"GET / HTTP/1.1"[..],
            b"PROXY",
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3",
            b"PROXY TCP4 ::1 ::1 1 2",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 70000 2",
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn header_is_read_and_the_rest_kept() {
        let mut input: &[u8] = b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 80\r\nGET / HTTP/1.1\r\n";
        let (header, rest) = read_header(&mut input).await.unwrap();
        assert_eq!(
            header,
            Header::Inet {
                source: "192.0.2.1:1000".parse().unwrap()
            }
        );
        let mut rewound = Rewind::new(rest, input);
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n");
        let mut plain: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(read_header(&mut plain)
            .await
            .unwrap_err()
            .contains("no `PROXY` preamble"));
    }
}
