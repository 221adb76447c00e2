//! The client's IP address for limits and audit: the socket peer, unless the peer is a configured
//! trusted proxy, in which case the right-most `X-Forwarded-For` entry not added by a trusted proxy.
//! Anyone can send the header, so it is never believed from an untrusted peer.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The client's address as the edge determined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

/// Proxies whose `X-Forwarded-For` is believed, as request extension (set by the service router).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub std::sync::Arc<Vec<IpAddr>>);

/// Resolves the client IP from the peer, the forwarded header and the trusted proxies.
pub fn resolve_client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else { return Some(peer) };
    let mut client = peer;
    for entry in header.rsplit(',') {
        let Ok(address) = entry.trim().parse::<IpAddr>() else { break };
        client = address;
        if !trusted.contains(&address) {
            break;
        }
    }
    Some(client)
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let trusted = parts.extensions.get::<TrustedProxies>().cloned().unwrap_or_default();
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|value| value.to_str().ok());
        Ok(Self(resolve_client_ip(peer, forwarded, &trusted.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let resolved = resolve_client_ip(Some(ip("203.0.113.7")), Some("1.2.3.4"), &[ip("10.0.0.1")]);
        assert_eq!(resolved, Some(ip("203.0.113.7")));
    }

    #[test]
    fn trusted_proxy_chain_yields_first_untrusted_from_the_right() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let resolved =
            resolve_client_ip(Some(ip("10.0.0.1")), Some("6.6.6.6, 198.51.100.9, 10.0.0.2"), &trusted);
        assert_eq!(resolved, Some(ip("198.51.100.9")), "the spoofed left-most entry is not believed");
    }

    #[test]
    fn garbage_header_falls_back_to_the_peer() {
        let resolved = resolve_client_ip(Some(ip("10.0.0.1")), Some("not-an-ip"), &[ip("10.0.0.1")]);
        assert_eq!(resolved, Some(ip("10.0.0.1")));
    }
}
