//! [`EgressAllow`]: the operator's precise exceptions to the policy (`egress_allow`): one internal
//! site, not every private network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// One `egress_allow` entry: a host name, or a network (an address is a network of one), with or
/// without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// A host name (lower case, no trailing dot), whatever it resolves to.
    Name {
        /// The name.
        name: String,
        /// Only this port; any port when None.
        port: Option<u16>,
    },
    /// Addresses in `network/prefix`.
    Network {
        /// The network's address (host bits cleared).
        network: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// Only this port; any port when None.
        port: Option<u16>,
    },
}

/// Where a connection is going, as far as it is known when it is checked.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The name it was asked for by, if it was asked for by name.
    pub name: Option<&'a str>,
    /// The address.
    pub ip: IpAddr,
    /// The port, when the check knows it (a resolver alone does not).
    pub port: Option<u16>,
}

impl AllowEntry {
    /// Parses `host`, `host:port`, `address`, `address:port`, `[v6]:port` or `network/prefix`
    /// (a CIDR range takes no port). The error says what is wrong with the entry.
    pub fn parse(text: &str) -> Result<AllowEntry, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an entry is empty".into());
        }
        if let Some((address, prefix)) = text.split_once('/') {
            let ip: IpAddr = address.parse().map_err(|_| format!("{text:?}: {address:?} is not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?;
            return Ok(AllowEntry::Network { network: mask(ip, prefix), prefix, port: None });
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(AllowEntry::Network { network: ip, prefix: full_prefix(ip), port: None });
        }
        if let Ok(socket) = text.parse::<std::net::SocketAddr>() {
            let ip = socket.ip();
            return Ok(AllowEntry::Network { network: ip, prefix: full_prefix(ip), port: Some(socket.port()) });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{text:?}: {port:?} is not a port (1 to 65535)"))?;
                (host, Some(port))
            }
            None => (text, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(AllowEntry::Network { network: ip, prefix: full_prefix(ip), port });
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(format!("{text:?} is not a host name, host:port, IP address or CIDR range"));
        }
        Ok(AllowEntry::Name { name, port })
    }

    /// Whether this entry lets a connection reach `to`.
    ///
    /// A network entry with a port matches only when the port is known and equal. A name entry
    /// with a port also matches a destination whose port is not known: that is a resolver's
    /// view (reqwest resolves a name without its port), and the port of a URL to a listed name
    /// has been checked before ([`EgressAllow::refuses_port`]).
    pub fn matches(&self, to: &Destination<'_>) -> bool {
        match self {
            AllowEntry::Name { name, port } => {
                (port.is_none() || to.port.is_none() || *port == to.port) && to.name.is_some_and(|n| same_name(n, name))
            }
            AllowEntry::Network { network, prefix, port } => {
                (port.is_none() || *port == to.port) && contains(*network, *prefix, to.ip)
            }
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Name { name, port: Some(port) } => write!(f, "{name}:{port}"),
            AllowEntry::Name { name, port: None } => f.write_str(name),
            AllowEntry::Network { network, prefix, port } => {
                let single = *prefix == full_prefix(*network);
                match (network, port) {
                    (IpAddr::V6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
                    (ip, Some(port)) => write!(f, "{ip}:{port}"),
                    (ip, None) if single => write!(f, "{ip}"),
                    (ip, None) => write!(f, "{ip}/{prefix}"),
                }
            }
        }
    }
}

/// The operator's exceptions (`egress_allow`): destinations allowed although their class is
/// refused by default. Cloud metadata, multicast and broadcast stay refused whatever is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressAllow(Arc<[AllowEntry]>);

impl EgressAllow {
    /// The entries parsed from their text forms; the error names the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<EgressAllow, String> {
        let parsed = entries.iter().map(|e| AllowEntry::parse(e.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(EgressAllow(parsed.into()))
    }

    /// The entries.
    pub fn entries(&self) -> &[AllowEntry] {
        &self.0
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an entry lets a connection reach `to`.
    pub fn allows(&self, to: &Destination<'_>) -> bool {
        self.0.iter().any(|entry| entry.matches(to))
    }

    /// Whether `name` is listed only with ports other than `port`: the operator said which
    /// ports of that host agentd may reach, and this is not one of them.
    pub fn refuses_port(&self, name: &str, port: u16) -> bool {
        let ports: Vec<Option<u16>> = self
            .0
            .iter()
            .filter_map(|entry| match entry {
                AllowEntry::Name { name: n, port: p } if same_name(name, n) => Some(*p),
                _ => None,
            })
            .collect();
        !ports.is_empty() && !ports.iter().any(|p| p.is_none_or(|p| p == port))
    }

    /// Whether `name` is listed (with any port).
    pub fn names(&self, name: &str) -> bool {
        self.0.iter().any(|entry| matches!(entry, AllowEntry::Name { name: n, .. } if same_name(name, n)))
    }
}

fn same_name(asked: &str, listed: &str) -> bool {
    asked.trim_end_matches('.').eq_ignore_ascii_case(listed)
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// Whether `ip` is in `network/prefix`. An IPv4-mapped IPv6 address is its IPv4 address (the
/// browser may write `[::ffff:127.0.0.1]` for an allowed 127.0.0.1).
fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (network, ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => mask(ip, prefix) == network,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to<'a>(name: Option<&'a str>, ip: &str, port: Option<u16>) -> Destination<'a> {
        Destination { name, ip: ip.parse().unwrap(), port }
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for text in ["intranet.corp", "intranet.corp:8443", "127.0.0.1", "127.0.0.1:8080", "10.1.0.0/16", "[::1]:8080", "::1", "fd00::/8"] {
            let entry = AllowEntry::parse(text).unwrap();
            assert_eq!(entry.to_string(), text, "{text}");
        }
        assert_eq!(AllowEntry::parse("Intranet.Corp.").unwrap().to_string(), "intranet.corp");
        assert_eq!(AllowEntry::parse("10.1.2.3/16").unwrap().to_string(), "10.1.0.0/16");
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("10.0.0.0/33", "prefix length"),
            ("host:0", "not a port"),
            ("host:99999", "not a port"),
            ("a b", "not a host name"),
            ("http://x", "not an IP address"),
            ("x/8", "not an IP address"),
        ] {
            let error = AllowEntry::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_port_entry_matches_only_that_port_and_only_when_it_is_known() {
        let entry = AllowEntry::parse("127.0.0.1:8080").unwrap();
        assert!(entry.matches(&to(None, "127.0.0.1", Some(8080))));
        assert!(entry.matches(&to(None, "::ffff:127.0.0.1", Some(8080))));
        assert!(!entry.matches(&to(None, "127.0.0.1", Some(8081))));
        assert!(!entry.matches(&to(None, "127.0.0.1", None)));
        assert!(!entry.matches(&to(None, "127.0.0.2", Some(8080))));
        let named = EgressAllow::parse(&["intranet.corp:8443"]).unwrap();
        assert!(named.allows(&to(Some("intranet.corp"), "10.0.0.5", Some(8443))));
        assert!(!named.allows(&to(Some("intranet.corp"), "10.0.0.5", Some(22))));
        assert!(named.refuses_port("intranet.corp", 22));
        assert!(!named.refuses_port("intranet.corp", 8443));
        assert!(!named.refuses_port("other.corp", 22));
    }

    #[test]
    fn networks_and_names_match_what_they_cover() {
        let network = AllowEntry::parse("10.1.0.0/16").unwrap();
        assert!(network.matches(&to(None, "10.1.255.1", None)));
        assert!(!network.matches(&to(None, "10.2.0.1", None)));
        let name = AllowEntry::parse("intranet.corp").unwrap();
        assert!(name.matches(&to(Some("INTRANET.corp."), "10.9.9.9", Some(1))));
        assert!(!name.matches(&to(Some("other.corp"), "10.9.9.9", Some(1))));
        assert!(!name.matches(&to(None, "10.9.9.9", Some(1))));
    }
}
