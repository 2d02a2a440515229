//! What kind of address an IP is, and which host names are known to be internal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// Reachable on the internet: the only class allowed by default.
    Public,
    /// This host: 127.0.0.0/8, ::1, `localhost`.
    Loopback,
    /// RFC 1918 networks (10/8, 172.16/12, 192.168/16), IPv6 site-local fec0::/10 and
    /// local-use NAT64 64:ff9b:1::/48.
    Private,
    /// 169.254.0.0/16 and fe80::/10.
    LinkLocal,
    /// The carrier-grade NAT shared address space, 100.64.0.0/10.
    SharedCgnat,
    /// A cloud instance-metadata service: refused even when private networks are allowed.
    Metadata,
    /// 0.0.0.0 or ::.
    Unspecified,
    /// "This network", 0.0.0.0/8 (except 0.0.0.0 itself).
    ThisNetwork,
    /// 224.0.0.0/4 and ff00::/8: never a TCP destination.
    Multicast,
    /// 255.255.255.255: never a TCP destination.
    Broadcast,
    /// Set aside and not routed on the internet: 240.0.0.0/4, 192.0.0.0/24, Teredo, discard-only
    /// 100::/64, IPv6 outside 2000::/3...
    Reserved,
    /// IPv6 unique local addresses, fc00::/7.
    UniqueLocal,
    /// Documentation examples: 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Network benchmarking: 198.18.0.0/15 and 2001:2::/48.
    Benchmarking,
}

impl AddressClass {
    /// Whether no policy ever lets a connection reach this class: metadata services (their
    /// credentials are the classic SSRF prize), and multicast and broadcast (never a TCP peer).
    pub fn is_always_refused(self) -> bool {
        matches!(self, AddressClass::Metadata | AddressClass::Multicast | AddressClass::Broadcast)
    }

    /// The class as a noun phrase with its article, for sentences such as "127.0.0.1 is a
    /// loopback address".
    pub fn described(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::SharedCgnat => "a shared (carrier-grade NAT) address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::ThisNetwork => "a \"this network\" address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "the broadcast address",
            AddressClass::Reserved => "a reserved address",
            AddressClass::UniqueLocal => "a unique local address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phrase = self.described();
        let noun = phrase.strip_suffix(" address").unwrap_or(phrase);
        f.write_str(noun.split_once(' ').map_or(noun, |(_article, rest)| rest))
    }
}

/// What kind of address `ip` is. IPv6 addresses that carry an IPv4 address (IPv4-mapped,
/// IPv4-compatible, IPv4-translated, NAT64 64:ff9b::/96, 6to4 2002::/16) are the class of that
/// IPv4 address, so no spelling of an address changes its class.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

/// Metadata services by address. 168.63.129.16 (Azure's WireServer) is in public space, which is
/// why it must be listed: a VM's agent talks to it, agentd never needs to.
const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, Oracle...
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata and credentials
    Ipv4Addr::new(169, 254, 0, 23),    // Tencent Cloud
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (legacy)
];

/// Metadata services by IPv6 address.
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), // AWS IMDS over IPv6
    Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),  // GCP metadata over IPv6
];

/// Special IPv4 ranges as (network, prefix length, class), most specific first.
const V4_RANGES: [([u8; 4], u32, AddressClass); 17] = [
    ([255, 255, 255, 255], 32, AddressClass::Broadcast),
    ([0, 0, 0, 0], 32, AddressClass::Unspecified),
    ([0, 0, 0, 0], 8, AddressClass::ThisNetwork),
    ([127, 0, 0, 0], 8, AddressClass::Loopback),
    ([10, 0, 0, 0], 8, AddressClass::Private),
    ([172, 16, 0, 0], 12, AddressClass::Private),
    ([192, 168, 0, 0], 16, AddressClass::Private),
    ([169, 254, 0, 0], 16, AddressClass::LinkLocal),
    ([100, 64, 0, 0], 10, AddressClass::SharedCgnat),
    ([192, 0, 0, 0], 24, AddressClass::Reserved), // IETF protocol assignments
    ([192, 0, 2, 0], 24, AddressClass::Documentation),
    ([198, 51, 100, 0], 24, AddressClass::Documentation),
    ([203, 0, 113, 0], 24, AddressClass::Documentation),
    ([198, 18, 0, 0], 15, AddressClass::Benchmarking),
    ([192, 88, 99, 0], 24, AddressClass::Reserved), // deprecated 6to4 relay anycast
    ([224, 0, 0, 0], 4, AddressClass::Multicast),
    ([240, 0, 0, 0], 4, AddressClass::Reserved),
];

/// Special IPv6 ranges as (network, prefix length, class), most specific first; addresses that
/// carry an IPv4 address are handled before these.
const V6_RANGES: [(u128, u32, AddressClass); 11] = [
    (0x0064_ff9b_0001 << 80, 48, AddressClass::Private), // local-use NAT64
    (0x0100 << 112, 64, AddressClass::Reserved),         // discard-only
    (0x2001_0db8 << 96, 32, AddressClass::Documentation),
    (0x2001_0002 << 96, 48, AddressClass::Benchmarking),
    // Teredo: the peer's IPv4 address is obfuscated and the tunnel goes anywhere; agentd never
    // needs it.
    (0x2001_0000 << 96, 32, AddressClass::Reserved),
    (0x3fff << 112, 20, AddressClass::Documentation),
    (0xfc00 << 112, 7, AddressClass::UniqueLocal),
    (0xfe80 << 112, 10, AddressClass::LinkLocal),
    (0xfec0 << 112, 10, AddressClass::Private), // site-local, deprecated but still routed inside
    (0xff00 << 112, 8, AddressClass::Multicast),
    (0x2000 << 112, 3, AddressClass::Public), // global unicast
];

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if METADATA_V4.contains(&ip) {
        return AddressClass::Metadata;
    }
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(network, len, _)| bits & v4_mask(*len) == u32::from_be_bytes(*network))
        .map_or(AddressClass::Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return classify_v4(v4);
    }
    if METADATA_V6.contains(&ip) {
        return AddressClass::Metadata;
    }
    let bits = u128::from(ip);
    V6_RANGES
        .iter()
        .find(|(network, len, _)| bits & v6_mask(*len) == *network)
        // Outside global unicast nothing is allocated for use on the internet.
        .map_or(AddressClass::Reserved, |(_, _, class)| *class)
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let prefix96 = bits >> 32;
    match prefix96 {
        0x0000_ffff => Some(low32),                     // ::ffff:a.b.c.d, IPv4-mapped
        0 => Some(low32),                               // ::a.b.c.d, IPv4-compatible (deprecated)
        0xffff_0000 => Some(low32),                     // ::ffff:0:a.b.c.d, IPv4-translated
        0x0064_ff9b_0000_0000_0000_0000 => Some(low32), // 64:ff9b::a.b.c.d, NAT64
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from((bits >> 80) as u32)), // 6to4
        _ => None,
    }
}

fn v4_mask(len: u32) -> u32 {
    u32::MAX.checked_shl(32 - len).unwrap_or(0)
}

fn v6_mask(len: u32) -> u128 {
    u128::MAX.checked_shl(128 - len).unwrap_or(0)
}

/// Names of metadata services: they resolve to a metadata address inside their cloud, and are
/// refused before any lookup so that no resolver configuration can change that.
const METADATA_NAMES: [&str; 6] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
];

/// The class of a host name known to be internal whatever it resolves to: `localhost` and
/// `*.localhost` (RFC 6761) are loopback, the metadata services' names are metadata. `None` for
/// any other name, whose class is that of the addresses it resolves to. Case and trailing dots
/// do not matter.
pub fn classify_name(host: &str) -> Option<AddressClass> {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        Some(AddressClass::Loopback)
    } else if METADATA_NAMES.contains(&name.as_str()) {
        Some(AddressClass::Metadata)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> AddressClass {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn range_edges_fall_on_the_right_side() {
        let cases = [
            ("9.255.255.255", AddressClass::Public),
            ("10.0.0.0", AddressClass::Private),
            ("11.0.0.0", AddressClass::Public),
            ("172.15.255.255", AddressClass::Public),
            ("172.16.0.0", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.0", AddressClass::Public),
            ("100.63.255.255", AddressClass::Public),
            ("100.64.0.0", AddressClass::SharedCgnat),
            ("100.127.255.255", AddressClass::SharedCgnat),
            ("100.128.0.0", AddressClass::Public),
            ("198.17.255.255", AddressClass::Public),
            ("198.19.255.255", AddressClass::Benchmarking),
            ("198.20.0.0", AddressClass::Public),
            ("223.255.255.255", AddressClass::Public),
            ("224.0.0.0", AddressClass::Multicast),
            ("239.255.255.255", AddressClass::Multicast),
            ("240.0.0.0", AddressClass::Reserved),
            ("255.255.255.254", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Broadcast),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.255.255.255", AddressClass::ThisNetwork),
            ("1.0.0.0", AddressClass::Public),
            ("126.255.255.255", AddressClass::Public),
            ("128.0.0.0", AddressClass::Public),
            ("169.254.169.253", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("1fff:ffff::1", AddressClass::Reserved),
            ("2000::1", AddressClass::Public),
            ("3fff:fff::1", AddressClass::Documentation),
            ("3fff:1000::1", AddressClass::Public),
            ("4000::1", AddressClass::Reserved),
            ("fbff::1", AddressClass::Reserved),
            ("fdff:ffff::1", AddressClass::UniqueLocal),
            ("fe00::1", AddressClass::Reserved),
            ("febf::1", AddressClass::LinkLocal),
            ("64:ff9b:1::a00:1", AddressClass::Private),
            ("2001:0:1::1", AddressClass::Reserved),
            ("2001:200::1", AddressClass::Public),
            ("::ffff:0:7f00:1", AddressClass::Loopback),
            ("2002:a9fe:a9fe::1", AddressClass::Metadata),
            ("fd00:ec2::253", AddressClass::UniqueLocal),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn every_metadata_address_is_metadata_in_every_ipv6_form() {
        for v4 in METADATA_V4 {
            let [a, b, c, d] = v4.octets();
            let forms = [
                IpAddr::V4(v4),
                IpAddr::V6(v4.to_ipv6_mapped()),
                format!("64:ff9b::{v4}").parse().unwrap(),
                format!("2002:{:02x}{:02x}:{:02x}{:02x}::", a, b, c, d).parse().unwrap(),
            ];
            for ip in forms {
                assert_eq!(classify(ip), AddressClass::Metadata, "{ip}");
            }
        }
    }

    #[test]
    fn names_are_matched_whatever_their_case_and_trailing_dots() {
        assert_eq!(classify_name("LocalHost."), Some(AddressClass::Loopback));
        assert_eq!(classify_name("a.b.localhost"), Some(AddressClass::Loopback));
        assert_eq!(classify_name("Metadata.Google.Internal."), Some(AddressClass::Metadata));
        assert_eq!(classify_name("notlocalhost"), None);
        assert_eq!(classify_name("metadata.google.internal.example.com"), None);
    }

    #[test]
    fn display_is_the_bare_class() {
        assert_eq!(AddressClass::LinkLocal.to_string(), "link-local");
        assert_eq!(AddressClass::Unspecified.to_string(), "unspecified");
        assert_eq!(AddressClass::Metadata.to_string(), "cloud metadata");
    }
}
