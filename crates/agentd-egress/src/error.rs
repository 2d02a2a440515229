//! Why a destination was refused or could not be reached.

use crate::class::AddressClass;

/// The environment variable that lets connections reach private networks.
pub const ALLOW_PRIVATE_NETWORKS_ENV: &str = "AGENTD_ALLOW_PRIVATE_NETWORKS";

/// Why a destination was refused. Each message is one sentence naming the host or address and
/// the reason; none carries a whole URL, whose path or query may hold a secret (webhook tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The text is not a URL.
    #[error("not a valid URL: {0}")]
    InvalidUrl(String),
    /// The URL's scheme is not http or https.
    #[error("the scheme {0:?} is not allowed; only http and https are")]
    Scheme(String),
    /// The destination is of a class the policy refuses.
    #[error("{}", refusal_sentence(target, *class))]
    Refused {
        /// The host as written, or a name with the address it resolved to ("a.example (10.0.0.1)").
        target: String,
        /// Why it is refused.
        class: AddressClass,
    },
    /// `egress_allow` lists the host with other ports only.
    #[error("{host} may be reached only on the ports egress_allow lists for it, not {port}")]
    PortNotAllowed {
        /// The host.
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// The destination is one no page may reach whatever the policy allows (the browser's
    /// DevTools endpoint, the egress proxy's own listeners).
    #[error("{target} is the browser's own control endpoint, which pages never reach")]
    Protected {
        /// The address and port.
        target: String,
    },
    /// The connection came through a proxy lane that lets nothing out (the browser's own
    /// traffic outside any session).
    #[error("the browser's own requests outside a session are not sent")]
    Closed,
    /// The name could not be resolved to any address.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// A chain of redirects was longer than the client follows.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// The HTTP client cannot be built with this configuration.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl EgressError {
    /// The egress error behind a failed request, if the policy is why it failed: a refused
    /// name or redirect hop surfaces as a `reqwest::Error` whose source chain holds it.
    pub fn find_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressError> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(egress) = error.downcast_ref::<EgressError>() {
                return Some(egress);
            }
            current = error.source();
        }
        None
    }

    /// The class of address that was refused, if this is a refusal.
    pub fn refused_class(&self) -> Option<AddressClass> {
        match self {
            EgressError::Refused { class, .. } => Some(*class),
            _ => None,
        }
    }
}

fn refusal_sentence(target: &str, class: AddressClass) -> String {
    let described = class.described();
    if class.is_always_refused() {
        format!("{target} is {described}, which agentd never connects to")
    } else {
        format!("{target} is {described}; set {ALLOW_PRIVATE_NETWORKS_ENV}=true to allow private networks, or list it in egress_allow")
    }
}
