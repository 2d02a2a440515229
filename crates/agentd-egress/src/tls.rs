//! The process's one TLS initialisation: rustls with the ring crypto provider.
//!
//! reqwest is built with `rustls-no-provider` (ring compiles in seconds where aws-lc-rs, its
//! default, takes minutes and a C toolchain), so a provider must be installed before the first
//! client is built, or building it panics. Every client agentd-egress builds calls
//! [`install_tls`] itself; the binary calls it at start for the clients that are not agentd's
//! outbound connections (the CLI talking to its own server).

use std::sync::Once;

static INSTALLED: Once = Once::new();

/// Makes ring the process's TLS crypto provider. Idempotent and cheap after the first call.
pub fn install_tls() {
    INSTALLED.call_once(|| {
        // Something else may have installed a provider first (a test harness, a library); any
        // provider works for our clients, so that is not an error.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_is_harmless_and_leaves_a_provider() {
        install_tls();
        install_tls();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
