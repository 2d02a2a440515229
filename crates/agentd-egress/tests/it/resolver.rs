//! The resolver with a faked DNS: names that resolve to internal addresses (DNS rebinding) are
//! refused, mixed answers keep only the allowed addresses, internal names are never looked up.

use std::net::IpAddr;

use agentd_egress::{AddressClass, CheckedResolver, EgressError, EgressPolicy};
use reqwest::dns::Resolve;

use crate::FakeDns;

fn dns() -> std::sync::Arc<FakeDns> {
    FakeDns::new(&[
        ("public.test", &["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]),
        ("rebind.test", &["127.0.0.1"]),
        ("metadata.test", &["169.254.169.254"]),
        ("mapped.test", &["::ffff:10.0.0.1"]),
        ("aws6.test", &["fd00:ec2::254"]),
        ("mixed.test", &["10.0.0.1", "93.184.216.34", "169.254.169.254"]),
        ("private.test", &["192.168.0.10", "fd12::10"]),
        ("nothing.test", &[]),
    ])
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

#[tokio::test]
async fn a_public_name_resolves_to_its_addresses() {
    let resolver = CheckedResolver::new(EgressPolicy::default(), dns());
    let addresses = resolver.resolve_host("public.test").await.unwrap();
    assert_eq!(addresses, ips(&["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]));
}

#[tokio::test]
async fn a_name_resolving_to_an_internal_address_is_refused_by_default() {
    let resolver = CheckedResolver::new(EgressPolicy::default(), dns());
    let cases = [
        ("rebind.test", "rebind.test (127.0.0.1)", AddressClass::Loopback),
        ("metadata.test", "metadata.test (169.254.169.254)", AddressClass::Metadata),
        ("mapped.test", "mapped.test (::ffff:10.0.0.1)", AddressClass::Private),
        ("aws6.test", "aws6.test (fd00:ec2::254)", AddressClass::Metadata),
        ("private.test", "private.test (192.168.0.10)", AddressClass::Private),
    ];
    for (name, target, class) in cases {
        let refusal = resolver.resolve_host(name).await.unwrap_err();
        assert_eq!(refusal, EgressError::Refused { target: target.into(), class }, "{name}");
    }
}

#[tokio::test]
async fn private_networks_allowed_still_refuse_metadata() {
    let resolver = CheckedResolver::new(EgressPolicy::with_private_networks(true), dns());
    assert_eq!(resolver.resolve_host("rebind.test").await.unwrap(), ips(&["127.0.0.1"]));
    assert_eq!(resolver.resolve_host("mapped.test").await.unwrap(), ips(&["::ffff:10.0.0.1"]));
    for name in ["metadata.test", "aws6.test"] {
        let refusal = resolver.resolve_host(name).await.unwrap_err();
        assert_eq!(refusal.refused_class(), Some(AddressClass::Metadata), "{name}");
    }
    // A mixed answer loses its metadata address, keeps the rest.
    assert_eq!(resolver.resolve_host("mixed.test").await.unwrap(), ips(&["10.0.0.1", "93.184.216.34"]));
}

#[tokio::test]
async fn a_mixed_answer_keeps_only_the_allowed_addresses() {
    let resolver = CheckedResolver::new(EgressPolicy::default(), dns());
    assert_eq!(resolver.resolve_host("mixed.test").await.unwrap(), ips(&["93.184.216.34"]));
}

#[tokio::test]
async fn internal_names_are_refused_without_a_lookup() {
    let dns = dns();
    let strict = CheckedResolver::new(EgressPolicy::default(), dns.clone());
    let open = CheckedResolver::new(EgressPolicy::with_private_networks(true), dns.clone());
    for name in ["localhost", "Localhost.", "app.localhost"] {
        assert_eq!(strict.resolve_host(name).await.unwrap_err().refused_class(), Some(AddressClass::Loopback));
    }
    for name in ["metadata.google.internal", "metadata.google.internal.", "metadata", "metadata.goog"] {
        assert_eq!(open.resolve_host(name).await.unwrap_err().refused_class(), Some(AddressClass::Metadata));
    }
    assert_eq!(dns.lookups(), 0);
}

#[tokio::test]
async fn names_that_do_not_resolve_are_resolve_errors() {
    let resolver = CheckedResolver::new(EgressPolicy::default(), dns());
    for (name, reason) in [("nothing.test", "no addresses"), ("unknown.test", "no such name")] {
        let error = resolver.resolve_host(name).await.unwrap_err();
        assert_eq!(error, EgressError::Resolve { host: name.into(), reason: reason.into() });
        assert_eq!(error.to_string(), format!("cannot resolve {name}: {reason}"));
    }
}

#[tokio::test]
async fn as_reqwest_resolver_it_answers_checked_addresses_or_the_refusal() {
    let resolver = CheckedResolver::new(EgressPolicy::default(), dns());
    let addrs: Vec<_> = resolver.resolve("public.test".parse().unwrap()).await.unwrap().collect();
    assert_eq!(addrs.len(), 2);
    assert!(addrs.iter().all(|addr| addr.port() == 0));
    let Err(error) = resolver.resolve("rebind.test".parse().unwrap()).await else { panic!("rebind.test resolved") };
    let refusal = EgressError::find_in(error.as_ref()).expect("the refusal is the error");
    assert_eq!(refusal.refused_class(), Some(AddressClass::Loopback));
}
