//! [`EgressPolicy`]: which destinations outbound connections may reach.

use std::net::IpAddr;

use url::{Host, Url};

use crate::allow::{Destination, EgressAllow};
use crate::class::{AddressClass, classify, classify_name};
use crate::error::EgressError;

/// Which destinations outbound connections may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Whether loopback, private, link-local, CGNAT and other non-public addresses may be
    /// reached (`AGENTD_ALLOW_PRIVATE_NETWORKS=true`). Metadata, multicast and broadcast
    /// addresses stay refused.
    pub allow_private_networks: bool,
    /// The operator's precise exceptions (`egress_allow`): hosts, host:port pairs and networks
    /// reachable although their class is refused. Metadata, multicast and broadcast stay refused.
    pub allow: EgressAllow,
}

impl EgressPolicy {
    /// The default policy (public addresses only) with private networks allowed or not.
    pub fn with_private_networks(allow_private_networks: bool) -> EgressPolicy {
        EgressPolicy { allow_private_networks, ..EgressPolicy::default() }
    }

    /// Checks a URL before any connection: http/https only, a host, and — for an IP literal in any
    /// spelling, or a name known to be internal (localhost, *.localhost, metadata.google.internal,
    /// metadata.goog, ...) — its class. Returns the parsed URL.
    ///
    /// The WHATWG parser of the `url` crate turns every IPv4 spelling (decimal `2130706433`,
    /// octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`, full-width digits) into its dotted form,
    /// so the literal checked is the one connected to. Other names are checked as they resolve
    /// (see [`crate::CheckedResolver`]).
    pub fn check_url(&self, raw: &str) -> Result<Url, EgressError> {
        let url = Url::parse(raw.trim()).map_err(|e| EgressError::InvalidUrl(e.to_string()))?;
        self.check_parsed_url(&url)?;
        Ok(url)
    }

    /// [`EgressPolicy::check_url`] for a URL already parsed.
    pub fn check_parsed_url(&self, url: &Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::Scheme(url.scheme().to_owned()));
        }
        let port = url.port_or_known_default();
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_destination(&Destination { name: None, ip: IpAddr::V4(ip), port }),
            Some(Host::Ipv6(ip)) => self.check_destination(&Destination { name: None, ip: IpAddr::V6(ip), port }),
            Some(Host::Domain(name)) => self.check_name_on(name, port),
            None => Err(EgressError::InvalidUrl("the URL has no host".into())),
        }
    }

    /// Checks a host name before it is resolved: refused if it is known to be internal (see
    /// [`classify_name`]) and neither this policy's class rules nor `egress_allow` let it through.
    pub fn check_name(&self, name: &str) -> Result<(), EgressError> {
        self.check_name_on(name, None)
    }

    /// [`EgressPolicy::check_name`] knowing the port: a name `egress_allow` lists only with
    /// other ports is refused on this one.
    pub fn check_name_on(&self, name: &str, port: Option<u16>) -> Result<(), EgressError> {
        if name.trim_end_matches('.').is_empty() {
            return Err(EgressError::InvalidUrl("the host is empty".into()));
        }
        if let Some(port) = port
            && self.allow.refuses_port(name, port)
        {
            return Err(EgressError::PortNotAllowed { host: name.to_owned(), port });
        }
        match classify_name(name) {
            Some(class) if !class.is_always_refused() && self.allow.names(name) => Ok(()),
            Some(class) => self.check_class(name, class),
            None => Ok(()),
        }
    }

    /// Whether this policy lets a connection reach `ip` (metadata addresses: never), the port
    /// unknown.
    pub fn allows(&self, ip: IpAddr) -> Result<(), EgressError> {
        self.check_destination(&Destination { name: None, ip, port: None })
    }

    /// Whether this policy lets a connection reach a destination: its address's class, or an
    /// `egress_allow` entry for it (never for metadata, multicast or broadcast).
    pub fn check_destination(&self, to: &Destination<'_>) -> Result<(), EgressError> {
        let class = classify(to.ip);
        if self.permits(class) || (!class.is_always_refused() && self.allow.allows(to)) {
            return Ok(());
        }
        let target = match (to.name, to.port) {
            (Some(name), _) => format!("{name} ({})", to.ip),
            (None, _) => to.ip.to_string(),
        };
        Err(EgressError::Refused { target, class })
    }

    /// Whether this policy lets a connection reach any address of `class` (`egress_allow` aside).
    pub fn permits(&self, class: AddressClass) -> bool {
        class == AddressClass::Public || (self.allow_private_networks && !class.is_always_refused())
    }

    fn check_class(&self, target: &str, class: AddressClass) -> Result<(), EgressError> {
        if self.permits(class) { Ok(()) } else { Err(EgressError::Refused { target: target.to_owned(), class }) }
    }
}
