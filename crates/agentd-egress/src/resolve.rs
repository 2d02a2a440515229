//! Name resolution that connects only to checked addresses: [`CheckedResolver`] is the client's
//! `reqwest::dns::Resolve`, so the addresses it classifies are exactly the ones connected to (no
//! DNS rebinding between a check and the connection).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::allow::Destination;
use crate::error::EgressError;
use crate::policy::EgressPolicy;

/// The addresses a name resolves to, as a [`NameLookup`] answers.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// How names become addresses before they are checked: the system resolver in the product
/// ([`SystemLookup`]), a table in tests.
pub trait NameLookup: Send + Sync {
    /// Every address `host` resolves to.
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The system resolver (getaddrinfo through tokio: /etc/hosts and nsswitch are honoured, as with
/// reqwest's default resolver).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|addr| addr.ip()).collect()) })
    }
}

/// Resolves names and keeps only the addresses the policy allows.
#[derive(Clone)]
pub struct CheckedResolver {
    policy: EgressPolicy,
    lookup: Arc<dyn NameLookup>,
}

impl CheckedResolver {
    /// A resolver that looks names up with `lookup` and checks them against `policy`.
    pub fn new(policy: EgressPolicy, lookup: Arc<dyn NameLookup>) -> CheckedResolver {
        CheckedResolver { policy, lookup }
    }

    /// The addresses of `host` that the policy allows, in the order the lookup gave them. A name
    /// known to be internal is refused without a lookup; when every address is refused the error
    /// names the host, the first address and its class.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<IpAddr>, EgressError> {
        self.resolve_destination(host, None).await
    }

    /// [`CheckedResolver::resolve_host`] knowing the port the addresses are for (the browser's
    /// proxy knows it; reqwest's resolver does not), so `host:port` entries of `egress_allow`
    /// apply exactly.
    pub async fn resolve_destination(&self, host: &str, port: Option<u16>) -> Result<Vec<IpAddr>, EgressError> {
        self.policy.check_name_on(host, port)?;
        let resolve_error = |reason: String| EgressError::Resolve { host: host.to_owned(), reason };
        let addresses = self.lookup.lookup(host).await.map_err(|e| resolve_error(e.to_string()))?;
        let mut first_refusal = None;
        let mut allowed = Vec::with_capacity(addresses.len());
        for ip in addresses {
            match self.policy.check_destination(&Destination { name: Some(host), ip, port }) {
                Ok(()) => allowed.push(ip),
                Err(refusal) => {
                    tracing::debug!(host, %ip, reason = %refusal, "egress: resolved address refused");
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match first_refusal {
            _ if !allowed.is_empty() => Ok(allowed),
            Some(refusal) => Err(refusal),
            None => Err(resolve_error("no addresses".into())),
        }
    }

    /// The policy this resolver applies.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver.resolve_host(name.as_str()).await?;
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
