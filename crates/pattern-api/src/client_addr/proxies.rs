use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use pattern_error::Error;

use super::cidr::{Cidr, canonical};

/// The header trusted proxies write the client's address in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (what most proxies and
    /// load balancers write).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// Which peers may say who the client is, and where they say it.
///
/// Proxies append the address they received a request from to the
/// forwarding header, so the list reads from the client (left) to the
/// closest proxy (right); anything left of what a trusted proxy appended
/// may have been written by the client. The client's address is therefore
/// read from the right:
/// - [`networks`](Self::networks): the peer and each address from the right
///   that lies in a trusted network are proxies; the first that does not is
///   the client (all trusted: the leftmost);
/// - [`hops`](Self::hops): the peer and the `n - 1` addresses to its left are
///   the `n` proxies in front of the service; the next one left is the
///   client (fewer addresses: the leftmost).
///
/// An entry that is not an address (`unknown`, an obfuscated `_name`, a
/// garbled value) ends the walk: the proxy that wrote it is taken as the
/// client, so a client can never choose its own address. A request whose
/// peer is not trusted keeps the peer's address, whatever its headers say.
/// [`none`](Self::none) (the default) never reads the headers.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    trust: Trust,
    header: ForwardedHeader,
}

#[derive(Clone, Debug, Default)]
enum Trust {
    #[default]
    Nobody,
    Networks(Arc<[Cidr]>),
    Hops(usize),
}

impl TrustedProxies {
    /// Trusts nobody: the client is the connection's peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts peers and forwarded addresses in these networks
    /// (`"10.0.0.0/8"`, `"fd00::/8"`, `"192.0.2.7"`); an error naming the
    /// first that does not parse.
    pub fn networks<I, S>(networks: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .map(|text| text.as_ref().parse())
            .collect::<Result<Arc<[Cidr]>, Error>>()?;
        Ok(Self {
            trust: if networks.is_empty() {
                Trust::Nobody
            } else {
                Trust::Networks(networks)
            },
            header: ForwardedHeader::default(),
        })
    }

    /// Trusts the `hops` proxies closest to the service, whatever their
    /// addresses (when every path to the service crosses exactly that many);
    /// zero trusts nobody.
    pub fn hops(hops: usize) -> Self {
        Self {
            trust: if hops == 0 {
                Trust::Nobody
            } else {
                Trust::Hops(hops)
            },
            header: ForwardedHeader::default(),
        }
    }

    /// Reads the address from `header` (default `X-Forwarded-For`): only the
    /// header your proxies write, or a client's own header would be read.
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether any proxy is trusted.
    pub fn is_none(&self) -> bool {
        matches!(self.trust, Trust::Nobody)
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer.ip());
        let mut trusted = peer;
        let mut hops_left = match &self.trust {
            Trust::Nobody => return peer,
            Trust::Networks(networks) if !networks.iter().any(|net| net.contains(peer)) => {
                return peer;
            }
            Trust::Networks(_) => usize::MAX,
            Trust::Hops(hops) => *hops,
        };
        for entry in self.entries_from_right(headers) {
            let Some(ip) = entry else {
                return trusted;
            };
            hops_left = hops_left.saturating_sub(1);
            let proxy = match &self.trust {
                Trust::Networks(networks) => networks.iter().any(|net| net.contains(ip)),
                _ => hops_left > 0,
            };
            if !proxy {
                return ip;
            }
            trusted = ip;
        }
        trusted
    }

    /// The forwarded addresses, closest proxy first (`None` for an entry
    /// that is not an address).
    fn entries_from_right<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> impl Iterator<Item = Option<IpAddr>> + 'h {
        let header = self.header;
        let name: &HeaderName = match header {
            ForwardedHeader::XForwardedFor => &X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => &FORWARDED,
        };
        headers.get_all(name).iter().rev().flat_map(move |value| {
            let text = value.to_str().ok();
            // A value that is not text, or a `Forwarded` value whose quotes
            // do not balance, is one bad entry.
            let entries: Vec<Option<IpAddr>> = match (text, header) {
                (None, _) => vec![None],
                (Some(text), ForwardedHeader::XForwardedFor) => {
                    text.rsplit(',').map(parse_node).collect()
                }
                (Some(text), ForwardedHeader::Forwarded) => match forwarded_elements(text) {
                    Some(elements) => elements
                        .iter()
                        .rev()
                        .map(|pairs| forwarded_for(pairs))
                        .collect(),
                    None => vec![None],
                },
            };
            entries
        })
    }
}

/// A `Forwarded` value as elements of `(name, value)` pairs, quoted
/// strings unquoted (RFC 7239 over RFC 9110's quoted-string: a comma or a
/// semicolon inside quotes is data, `\` escapes); `None` when a quote is
/// left open.
fn forwarded_elements(text: &str) -> Option<Vec<Vec<(String, String)>>> {
    let mut elements = vec![Vec::new()];
    let (mut name, mut value) = (String::new(), String::new());
    let (mut in_value, mut quoted) = (false, false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => value.push(chars.next()?),
                c => value.push(c),
            }
            continue;
        }
        match c {
            '"' if in_value => quoted = true,
            '=' if !in_value => in_value = true,
            ';' | ',' => {
                let pairs = elements.last_mut()?;
                if !name.trim().is_empty() {
                    pairs.push((name.trim().to_owned(), value.trim().to_owned()));
                }
                name.clear();
                value.clear();
                in_value = false;
                if c == ',' {
                    elements.push(Vec::new());
                }
            }
            c if in_value => value.push(c),
            c => name.push(c),
        }
    }
    if quoted {
        return None;
    }
    if !name.trim().is_empty() {
        elements
            .last_mut()?
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Some(elements)
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http`).
fn forwarded_for(pairs: &[(String, String)]) -> Option<IpAddr> {
    pairs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("for"))
        .and_then(|(_, value)| parse_node(value))
}

/// An address as proxies write it: `192.0.2.60`, `192.0.2.60:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip.parse().ok().map(canonical);
    }
    let (ip, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use http::HeaderMap;

    use super::{ForwardedHeader, TrustedProxies, parse_node};

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nobody_trusted_means_the_peer() {
        let xff = headers("x-forwarded-for", &["203.0.113.9"]);
        for proxies in [
            TrustedProxies::none(),
            TrustedProxies::hops(0),
            TrustedProxies::networks::<_, &str>([]).unwrap(),
        ] {
            assert_eq!(proxies.client(peer("10.0.0.1"), &xff), ip("10.0.0.1"));
        }
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let proxies = TrustedProxies::networks(["10.0.0.0/8"]).unwrap();
        let xff = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(
            proxies.client(peer("198.51.100.4"), &xff),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn networks_walk_from_the_right_past_trusted_proxies() {
        let proxies = TrustedProxies::networks(["10.0.0.0/8"]).unwrap();
        // The client wrote "1.1.1.1" itself; 203.0.113.9 is what the outer
        // proxy (10.0.0.2) saw.
        let xff = headers("x-forwarded-for", &["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(proxies.client(peer("10.0.0.1"), &xff), ip("203.0.113.9"));
        // No header: the peer is the client.
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // Every entry trusted: the leftmost.
        let inner = headers("x-forwarded-for", &["10.9.9.9, 10.0.0.2"]);
        assert_eq!(proxies.client(peer("10.0.0.1"), &inner), ip("10.9.9.9"));
    }

    #[test]
    fn hops_count_proxies_whatever_their_address() {
        let xff = headers("x-forwarded-for", &["1.1.1.1, 203.0.113.9, 198.51.100.2"]);
        // One proxy (the peer): the rightmost entry is the client.
        assert_eq!(
            TrustedProxies::hops(1).client(peer("192.0.2.1"), &xff),
            ip("198.51.100.2")
        );
        assert_eq!(
            TrustedProxies::hops(2).client(peer("192.0.2.1"), &xff),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::hops(3).client(peer("192.0.2.1"), &xff),
            ip("1.1.1.1")
        );
        // More hops than entries: the leftmost.
        assert_eq!(
            TrustedProxies::hops(9).client(peer("192.0.2.1"), &xff),
            ip("1.1.1.1")
        );
        assert_eq!(
            TrustedProxies::hops(usize::MAX).client(peer("192.0.2.1"), &xff),
            ip("1.1.1.1")
        );
        assert_eq!(
            TrustedProxies::hops(1).client(peer("192.0.2.1"), &HeaderMap::new()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn a_bad_entry_ends_the_walk_at_the_proxy_that_wrote_it() {
        let proxies = TrustedProxies::networks(["10.0.0.0/8"]).unwrap();
        for bad in [
            "unknown",
            "",
            "not-an-ip",
            "1.2.3.4:99999",
            "[::1",
            "_hidden",
        ] {
            let xff = headers("x-forwarded-for", &[&format!("1.1.1.1, {bad}, 10.0.0.2")]);
            assert_eq!(
                proxies.client(peer("10.0.0.1"), &xff),
                ip("10.0.0.2"),
                "{bad:?}"
            );
        }
        let mut bytes = HeaderMap::new();
        bytes.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff1.1.1.1").unwrap(),
        );
        assert_eq!(proxies.client(peer("10.0.0.1"), &bytes), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_reads_the_for_nodes() {
        let proxies = TrustedProxies::networks(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let fwd = headers(
            "forwarded",
            &[
                r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, proto=http;FOR=10.0.0.2"#,
            ],
        );
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &fwd),
            ip("2001:db8:cafe::17")
        );
        // X-Forwarded-For is not read when Forwarded is the header.
        let xff = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(proxies.client(peer("10.0.0.1"), &xff), ip("10.0.0.1"));
    }

    /// A comma or semicolon inside a quoted value is data, not a new
    /// element: a client-chosen `host` cannot smuggle a `for=`.
    #[test]
    fn forwarded_quoted_strings_cannot_smuggle_an_address() {
        let proxies = TrustedProxies::networks(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let smuggled = headers("forwarded", &[r#"for=198.51.100.7;host="a,for=9.9.9.9""#]);
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &smuggled),
            ip("198.51.100.7")
        );
        let semicolon = headers("forwarded", &[r#"for=198.51.100.7;host="x;for=9.9.9.9""#]);
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &semicolon),
            ip("198.51.100.7")
        );
        let escaped = headers(
            "forwarded",
            &[r#"for="[2001:db8::1]:80";host="q\"uote,for=9.9.9.9""#],
        );
        assert_eq!(
            proxies.client(peer("10.0.0.1"), &escaped),
            ip("2001:db8::1")
        );
        // An open quote: the whole value is one bad entry; the walk stops
        // at the proxy.
        let open = headers("forwarded", &[r#"for=198.51.100.7;host="a, for=9.9.9.9"#]);
        assert_eq!(proxies.client(peer("10.0.0.1"), &open), ip("10.0.0.1"));
    }

    #[test]
    fn nodes_parse_as_proxies_write_them() {
        for (text, want) in [
            ("192.0.2.60", Some("192.0.2.60")),
            (" 192.0.2.60:4711 ", Some("192.0.2.60")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("::ffff:192.0.2.1", Some("192.0.2.1")),
            ("[2001:db8::1]x", None),
            ("2001:db8::1:99999", None),
            ("unknown", None),
        ] {
            assert_eq!(parse_node(text), want.map(ip), "{text:?}");
        }
    }
}
