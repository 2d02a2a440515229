//! [`EgressPolicy`]: which destinations outbound connections may reach.

use std::net::IpAddr;

use url::{Host, Url};

use crate::class::{AddressClass, classify, classify_name};
use crate::error::EgressError;

/// Which destinations outbound connections may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Whether loopback, private, link-local, CGNAT and other non-public addresses may be
    /// reached (`AGENTD_ALLOW_PRIVATE_NETWORKS=true`). Metadata, multicast and broadcast
    /// addresses stay refused.
    pub allow_private_networks: bool,
}

impl EgressPolicy {
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
        match url.host() {
            Some(Host::Ipv4(ip)) => self.allows(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.allows(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => self.check_name(name),
            None => Err(EgressError::InvalidUrl("the URL has no host".into())),
        }
    }

    /// Checks a host name before it is resolved: refused if it is known to be internal (see
    /// [`classify_name`]) and this policy does not allow its class.
    pub fn check_name(&self, name: &str) -> Result<(), EgressError> {
        if name.trim_end_matches('.').is_empty() {
            return Err(EgressError::InvalidUrl("the host is empty".into()));
        }
        match classify_name(name) {
            Some(class) => self.check_class(name, class),
            None => Ok(()),
        }
    }

    /// Whether this policy lets a connection reach `ip` (metadata addresses: never).
    pub fn allows(&self, ip: IpAddr) -> Result<(), EgressError> {
        self.check_class(&ip.to_string(), classify(ip))
    }

    /// Whether this policy lets a connection reach an address of `class`.
    pub fn permits(&self, class: AddressClass) -> bool {
        class == AddressClass::Public || (self.allow_private_networks && !class.is_always_refused())
    }

    fn check_class(&self, target: &str, class: AddressClass) -> Result<(), EgressError> {
        if self.permits(class) { Ok(()) } else { Err(EgressError::Refused { target: target.to_owned(), class }) }
    }
}
