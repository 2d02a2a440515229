//! [`OperatorClient`]: the HTTP client for destinations the operator configured — the LLM, the
//! speech server, the embeddings endpoint, the search provider.
//!
//! The operator chose these destinations, so no [`crate::EgressPolicy`] applies: an LLM on
//! `localhost:11434` is the normal case, not an attack. What still holds:
//!
//! - **Proxy: the environment's, and only it.** A proxy named by the standard variables
//!   (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, with `NO_PROXY` exceptions; lower case too;
//!   `HTTP_PROXY` is ignored under CGI) is used, as curl would: the operator owns the process
//!   environment, and a server behind a corporate egress proxy needs it. Nothing else is: the
//!   operating system's proxy settings (reqwest's `system-proxy` feature) are never read, and
//!   the first operator client logs which variables are set (their names; a value may hold
//!   credentials), so a proxy is never a surprise. The checked [`crate::EgressClient`] uses no
//!   proxy at all.
//! - **Redirects stay on the server.** Up to [`crate::MAX_REDIRECTS`] redirects are followed
//!   while they stay on the configured host and port (or go from `http` to `https` on the same
//!   host, both on their default ports); any other is returned as is, so the caller reports the
//!   3xx. Keys travel in headers reqwest does not know to drop across hosts (`x-api-key`,
//!   `X-Subscription-Token`), and a redirect is no reason to send them elsewhere.
//! - **Bounded.** A connect timeout always; an overall timeout when the caller wants one (a
//!   streamed LLM answer is bounded per chunk by its caller instead).

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use reqwest::{IntoUrl, Method, RequestBuilder, redirect};
use url::Url;

use crate::client::MAX_REDIRECTS;
use crate::error::EgressError;
use crate::tls::install_tls;

/// The environment variables that name a proxy for reqwest.
const PROXY_VARIABLES: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

static PROXY_LOGGED: Once = Once::new();

/// How an [`OperatorClient`] behaves.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The limit on a whole request, from connecting to the end of the body; `None` for none
    /// (the caller bounds the call itself).
    pub timeout: Option<Duration>,
    /// The limit on resolving and connecting.
    pub connect_timeout: Duration,
    /// The `User-Agent` header of every request.
    pub user_agent: String,
}

impl Default for OperatorConfig {
    fn default() -> OperatorConfig {
        OperatorConfig {
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("agentd/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// An HTTP client for an operator-configured destination (see the module docs). Cheap to clone:
/// clones share one connection pool.
#[derive(Clone)]
pub struct OperatorClient {
    http: reqwest::Client,
}

impl OperatorClient {
    /// A client configured by `config`; only a zero timeout is refused.
    pub fn new(config: OperatorConfig) -> Result<OperatorClient, EgressError> {
        install_tls();
        if config.connect_timeout.is_zero() || config.timeout.is_some_and(|t| t.is_zero()) {
            return Err(EgressError::Client("the timeouts must be more than zero".into()));
        }
        log_proxy_variables();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent)
            .redirect(same_server_redirects());
        if let Some(timeout) = config.timeout {
            builder = builder.timeout(timeout);
        }
        let http = builder.build().map_err(|e| EgressError::Client(crate::chain::error_chain(&e)))?;
        Ok(OperatorClient { http })
    }

    /// A request to `url`.
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// A GET request to `url`.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.http.get(url)
    }

    /// A POST request to `url`.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.http.post(url)
    }
}

impl fmt::Debug for OperatorClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorClient").finish_non_exhaustive()
    }
}

/// Follows redirects that stay on the first URL's server (see the module docs), at most
/// [`MAX_REDIRECTS`]; returns any other as is.
fn same_server_redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(EgressError::TooManyRedirects(MAX_REDIRECTS));
        }
        let stays = attempt.previous().first().is_none_or(|first| same_server(first, attempt.url()));
        if stays { attempt.follow() } else { attempt.stop() }
    })
}

/// Whether `next` is on `first`'s server: the same host and port and scheme, or the move from
/// `http` to `https` on the same host with both ports the default.
fn same_server(first: &Url, next: &Url) -> bool {
    if first.host_str() != next.host_str() {
        return false;
    }
    if first.scheme() == next.scheme() {
        return first.port_or_known_default() == next.port_or_known_default();
    }
    first.scheme() == "http" && next.scheme() == "https" && first.port().is_none() && next.port().is_none()
}

/// Logs, once per process, the names of the proxy variables set (operator connections go
/// through that proxy).
fn log_proxy_variables() {
    PROXY_LOGGED.call_once(|| {
        let set: Vec<&str> =
            PROXY_VARIABLES.into_iter().filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty())).collect();
        if !set.is_empty() {
            tracing::info!(
                variables = %set.join(", "),
                "operator connections (LLM, speech, embeddings, search) go through the proxy the environment names; \
                 checked connections (pages, webhooks, tools) never use one"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn redirects_stay_on_the_server() {
        let cases = [
            ("http://h:8080/a", "http://h:8080/b", true),
            ("https://h/a", "https://h:443/b", true),
            ("http://h/a", "https://h/a", true),
            ("http://h:8080/a", "http://h:8081/a", false),
            ("http://h:8080/a", "https://h:8080/a", false),
            ("https://h/a", "http://h/a", false),
            ("https://h/a", "https://other/a", false),
            ("https://h/a", "https://sub.h/a", false),
        ];
        for (first, next, stays) in cases {
            assert_eq!(same_server(&url(first), &url(next)), stays, "{first} → {next}");
        }
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let zero_connect = OperatorConfig { connect_timeout: Duration::ZERO, ..OperatorConfig::default() };
        assert!(matches!(OperatorClient::new(zero_connect), Err(EgressError::Client(_))));
        let zero_total = OperatorConfig { timeout: Some(Duration::ZERO), ..OperatorConfig::default() };
        assert!(matches!(OperatorClient::new(zero_total), Err(EgressError::Client(_))));
        assert!(OperatorClient::new(OperatorConfig::default()).is_ok());
    }
}
