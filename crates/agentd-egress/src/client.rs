//! [`EgressClient`]: a reqwest client whose every connection goes through the policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::redirect;

use crate::error::EgressError;
use crate::policy::EgressPolicy;
use crate::resolve::{CheckedResolver, NameLookup, SystemLookup};

/// How many redirects a client that follows them follows, at most.
pub const MAX_REDIRECTS: usize = 10;

/// How an [`EgressClient`] behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The limit on a whole request, from connecting to the end of the body.
    pub timeout: Duration,
    /// The limit on resolving and connecting.
    pub connect_timeout: Duration,
    /// `false`: a 3xx is returned as is (webhooks); `true`: up to [`MAX_REDIRECTS`] hops, each
    /// re-checked.
    pub follow_redirects: bool,
    /// The `User-Agent` header of every request.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            follow_redirects: false,
            user_agent: concat!("agentd/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A reqwest client whose every connection goes through the policy: names are resolved by a
/// [`CheckedResolver`], IP literals and redirect hops are checked with
/// [`EgressPolicy::check_url`], and no proxy is used (a proxy would connect on our behalf,
/// past every check).
#[derive(Clone)]
pub struct EgressClient {
    http: reqwest::Client,
    policy: EgressPolicy,
}

impl EgressPolicy {
    /// An HTTP client bound to this policy.
    pub fn client(&self, config: ClientConfig) -> Result<EgressClient, EgressError> {
        self.client_with_lookup(config, Arc::new(SystemLookup))
    }

    /// An HTTP client bound to this policy that looks names up with `lookup` (tests give a table).
    pub fn client_with_lookup(
        &self,
        config: ClientConfig,
        lookup: Arc<dyn NameLookup>,
    ) -> Result<EgressClient, EgressError> {
        crate::tls::install_tls();
        if config.timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(EgressError::Client("the timeouts must be more than zero".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent)
            .no_proxy()
            .redirect(redirect_policy(self.clone(), config.follow_redirects))
            .dns_resolver(CheckedResolver::new(self.clone(), lookup))
            .build()
            .map_err(|e| EgressError::Client(e.to_string()))?;
        Ok(EgressClient { http, policy: self.clone() })
    }
}

/// No redirects, or up to [`MAX_REDIRECTS`] with each hop's URL checked like the first: an IP
/// literal or internal name is refused here, and any other name by the resolver when the hop
/// connects.
fn redirect_policy(policy: EgressPolicy, follow: bool) -> redirect::Policy {
    if !follow {
        return redirect::Policy::none();
    }
    redirect::Policy::custom(move |attempt| {
        // `previous` starts with the first URL, so it holds as many URLs as hops taken so far
        // counting this one.
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(EgressError::TooManyRedirects(MAX_REDIRECTS));
        }
        match policy.check_parsed_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refusal) => {
                tracing::debug!(reason = %refusal, "egress: redirect refused");
                attempt.error(refusal)
            }
        }
    })
}

impl EgressPolicy {
    /// A plain reqwest client bound to this policy, for a library that takes one (rmcp's
    /// streamable-HTTP transport): names resolved by the [`CheckedResolver`], no proxy, no
    /// redirects (the one URL, checked before, is the only destination), no overall timeout (a
    /// server's event stream stays open; the caller bounds each request), and no idle
    /// connections kept (a reused connection whose last body was not drained stalls).
    pub fn streaming_client(&self, connect_timeout: Duration) -> Result<reqwest::Client, EgressError> {
        crate::tls::install_tls();
        reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .user_agent(concat!("agentd/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .redirect(redirect::Policy::none())
            .dns_resolver(CheckedResolver::new(self.clone(), Arc::new(SystemLookup)))
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| EgressError::Client(crate::error_chain(&e).to_string()))
    }
}

impl EgressClient {
    /// A request to `url` (checked first; a refused URL never reaches the network).
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, EgressError> {
        let url = self.policy.check_url(url)?;
        Ok(self.http.request(method, url))
    }

    /// A GET request to `url` (see [`EgressClient::request`]).
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(reqwest::Method::GET, url)
    }

    /// A POST request to `url` (see [`EgressClient::request`]).
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(reqwest::Method::POST, url)
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }
}

impl fmt::Debug for EgressClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressClient").field("policy", &self.policy).finish_non_exhaustive()
    }
}
