//! agentd-fetch at its boundary: real fetches from the fixture web on loopback
//! (`agentd_fetch::fixtures`). `content` checks what each kind of page becomes; `network` the
//! egress policy, redirects, limits and failures.

mod content;
mod network;

use agentd_egress::EgressPolicy;
use agentd_fetch::{FetchLimits, Fetcher};

/// A fetcher that may reach loopback (the fixture web), with `limits`.
pub fn fetcher(limits: FetchLimits) -> Fetcher {
    Fetcher::new(EgressPolicy::with_private_networks(true), limits).expect("a fetcher")
}
