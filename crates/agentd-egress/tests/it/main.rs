//! The egress policy at its boundaries: a table of targets in every spelling, the resolver with a
//! faked DNS (rebinding refused), and a real client against websites on loopback; the operator
//! client and error chains against servers on loopback; and the tidy check that every
//! outbound connection is built here.

mod operator;
mod proxy;
mod resolver;
mod server;
mod targets;
mod tidy;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentd_egress::{LookupFuture, NameLookup};

/// A DNS that answers from a table (any other name: not found) and counts its lookups.
#[derive(Default)]
pub struct FakeDns {
    answers: HashMap<String, Vec<IpAddr>>,
    lookups: AtomicUsize,
}

impl FakeDns {
    /// A DNS answering `name → addresses` for each entry.
    pub fn new(entries: &[(&str, &[&str])]) -> Arc<FakeDns> {
        let answers = entries
            .iter()
            .map(|(name, ips)| (name.to_string(), ips.iter().map(|ip| ip.parse().unwrap()).collect()))
            .collect();
        Arc::new(FakeDns { answers, lookups: AtomicUsize::new(0) })
    }

    /// How many lookups were asked of it.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl NameLookup for FakeDns {
    fn lookup(&self, host: &str) -> LookupFuture {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer =
            self.answers.get(host).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"));
        Box::pin(async move { answer })
    }
}
