//! agentd's egress policy: the one module every outbound connection goes through (webhooks now;
//! page fetching, the LLM and the browser later).
//!
//! [`EgressPolicy`] says which destinations may be reached: http and https only, public addresses
//! only unless private networks are allowed (`AGENTD_ALLOW_PRIVATE_NETWORKS=true`), and cloud
//! metadata services never. [`classify`] gives an IP address's [`AddressClass`] (an IPv6 address
//! carrying an IPv4 one is that IPv4 address's class); [`classify_name`] the class of names known
//! to be internal. [`EgressPolicy::check_url`] checks a URL before any connection;
//! [`EgressPolicy::client`] makes an [`EgressClient`], a reqwest client whose names are resolved
//! by a [`CheckedResolver`] (only checked addresses are connected to: no DNS rebinding), whose
//! IP-literal URLs and redirect hops are checked, and which uses no proxy. Every refusal is an
//! [`EgressError`].
//!
//! Invariants: no connection is opened to an address the policy has not checked; an error names
//! the host or address, never the whole URL (paths and queries may hold secrets).
#![deny(missing_docs)]

mod allow;
mod class;
mod client;
mod error;
mod policy;
mod proxy;
mod resolve;

pub use allow::{AllowEntry, Destination, EgressAllow};
pub use class::{AddressClass, classify, classify_name};
pub use client::{ClientConfig, EgressClient, MAX_REDIRECTS};
pub use error::{ALLOW_PRIVATE_NETWORKS_ENV, EgressError};
pub use policy::EgressPolicy;
pub use proxy::{EgressProxy, Lane, ProxySettings, ProxyStats, REFUSED_HEADER};
pub use resolve::{CheckedResolver, LookupFuture, NameLookup, SystemLookup};
