//! agentd's outbound layer: every outbound connection goes through this crate, checked or
//! operator.
//!
//! A *checked* connection goes to a destination a user or a model chose (pages, fetch, webhooks,
//! tools, MCP, the browser's egress) and passes the [`EgressPolicy`]; an *operator* connection
//! goes to one the operator configured (the LLM, speech, embeddings, search) through an
//! [`OperatorClient`] (no policy; the environment's proxy only; redirects stay on the server).
//! Both share one TLS initialisation ([`install_tls`]), one reading of `Retry-After` and one
//! backoff ([`retry_after`], [`Backoff`], [`Jitter`]) and one way to describe a failure
//! ([`ErrorChain`]: the causes on one line, the host named, never a URL's path or query).
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
//! Invariants: no checked connection is opened to an address the policy has not checked; an
//! error names the host or address, never the whole URL (paths and queries may hold secrets);
//! no other crate of the server builds an HTTP client or installs a TLS provider (a tidy test
//! reads the sources).
#![deny(missing_docs)]

mod allow;
mod chain;
mod class;
mod client;
mod error;
mod operator;
mod policy;
mod proxy;
mod resolve;
mod retry;
mod tls;

pub use allow::{AllowEntry, Destination, EgressAllow};
pub use chain::{ErrorChain, error_chain, redact};
pub use class::{AddressClass, classify, classify_name};
pub use client::{ClientConfig, EgressClient, MAX_REDIRECTS};
pub use error::{ALLOW_PRIVATE_NETWORKS_ENV, EgressError};
pub use operator::{OperatorClient, OperatorConfig};
pub use policy::EgressPolicy;
pub use proxy::{EgressProxy, Lane, ProxySettings, ProxyStats, REFUSED_HEADER};
pub use resolve::{CheckedResolver, LookupFuture, NameLookup, SystemLookup};
pub use retry::{Backoff, Jitter, RETRYABLE_STATUSES, retry_after};
pub use tls::install_tls;
