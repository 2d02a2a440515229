//! `check_url` over a table of targets: every class, every odd spelling, every scheme trick,
//! each with and without `allow_private_networks`.

use agentd_egress::{AddressClass, EgressError, EgressPolicy};

use AddressClass::*;
use Outcome::{Allowed, BadScheme, Invalid, Refused};

/// What `check_url` does with a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Refused(AddressClass),
    BadScheme,
    Invalid,
}

/// Target, outcome by default, outcome with `allow_private_networks`.
const TARGETS: &[(&str, Outcome, Outcome)] = &[
    // Public.
    ("http://example.com/", Allowed, Allowed),
    ("https://example.com:8443/path?q=1#f", Allowed, Allowed),
    ("HTTP://EXAMPLE.COM/", Allowed, Allowed),
    ("http://8.8.8.8/", Allowed, Allowed),
    ("http://172.32.0.1/", Allowed, Allowed),
    ("http://100.128.0.1/", Allowed, Allowed),
    ("http://[2606:4700:4700::1111]/", Allowed, Allowed),
    ("http://[::ffff:8.8.8.8]/", Allowed, Allowed),
    ("http://[64:ff9b::808:808]/", Allowed, Allowed),
    ("http://[2002:808:808::1]/", Allowed, Allowed),
    // The host is example.com; the rest is userinfo.
    ("http://127.0.0.1:80@example.com/", Allowed, Allowed),
    ("http:///example.com/", Allowed, Allowed),
    // Loopback, in every spelling.
    ("http://127.0.0.1/", Refused(Loopback), Allowed),
    ("http://127.255.255.254:8080/", Refused(Loopback), Allowed),
    ("http://127.1/", Refused(Loopback), Allowed),
    ("http://2130706433/", Refused(Loopback), Allowed),
    ("http://0x7f000001/", Refused(Loopback), Allowed),
    ("http://0x7f.1/", Refused(Loopback), Allowed),
    ("http://0177.0.0.1/", Refused(Loopback), Allowed),
    ("http://127.000.000.001/", Refused(Loopback), Allowed),
    ("http://127.0.0.1./", Refused(Loopback), Allowed),
    ("http://１２７.０.０.１/", Refused(Loopback), Allowed),
    ("  http://127.0.0.1/  ", Refused(Loopback), Allowed),
    ("http://evil.com@127.0.0.1/", Refused(Loopback), Allowed),
    ("http://user:pass@127.0.0.1:8080/", Refused(Loopback), Allowed),
    ("http://[::1]/", Refused(Loopback), Allowed),
    ("http://[0:0:0:0:0:0:0:1]/", Refused(Loopback), Allowed),
    ("http://[::ffff:127.0.0.1]/", Refused(Loopback), Allowed),
    ("http://[::ffff:7f00:1]/", Refused(Loopback), Allowed),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", Refused(Loopback), Allowed),
    ("http://[::127.0.0.1]/", Refused(Loopback), Allowed),
    ("http://[64:ff9b::7f00:1]/", Refused(Loopback), Allowed),
    ("http://[2002:7f00:1::]/", Refused(Loopback), Allowed),
    ("http://localhost/", Refused(Loopback), Allowed),
    ("http://localhost./", Refused(Loopback), Allowed),
    ("http://LOCALHOST:8080/", Refused(Loopback), Allowed),
    ("http://api.localhost/", Refused(Loopback), Allowed),
    ("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", Refused(Loopback), Allowed),
    // This host, by other names.
    ("http://0.0.0.0/", Refused(Unspecified), Allowed),
    ("http://0/", Refused(Unspecified), Allowed),
    ("http://[::]/", Refused(Unspecified), Allowed),
    ("http://0.1.2.3/", Refused(ThisNetwork), Allowed),
    // Private networks.
    ("http://10.0.0.1/", Refused(Private), Allowed),
    ("http://10.255.255.255/", Refused(Private), Allowed),
    ("http://172.16.0.1/", Refused(Private), Allowed),
    ("http://172.31.255.255/", Refused(Private), Allowed),
    ("http://192.168.1.1/", Refused(Private), Allowed),
    ("http://0xc0a80101/", Refused(Private), Allowed),
    ("http://3232235777/", Refused(Private), Allowed),
    ("http://[::ffff:10.0.0.1]/", Refused(Private), Allowed),
    ("http://[::ffff:a00:1]/", Refused(Private), Allowed),
    ("http://[fec0::1]/", Refused(Private), Allowed),
    ("http://169.254.1.1/", Refused(LinkLocal), Allowed),
    ("http://[fe80::1]/", Refused(LinkLocal), Allowed),
    ("http://100.64.0.1/", Refused(SharedCgnat), Allowed),
    ("http://100.127.255.255/", Refused(SharedCgnat), Allowed),
    ("http://[fc00::1]/", Refused(UniqueLocal), Allowed),
    ("http://[fd12:3456::1]/", Refused(UniqueLocal), Allowed),
    // Ranges that are not the internet.
    ("http://240.0.0.1/", Refused(Reserved), Allowed),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", Refused(Reserved), Allowed),
    ("http://[100::1]/", Refused(Reserved), Allowed),
    ("http://192.0.2.1/", Refused(Documentation), Allowed),
    ("http://[2001:db8::1]/", Refused(Documentation), Allowed),
    ("http://198.18.0.1/", Refused(Benchmarking), Allowed),
    // Never a TCP peer.
    ("http://224.0.0.1/", Refused(Multicast), Refused(Multicast)),
    ("http://[ff02::1]/", Refused(Multicast), Refused(Multicast)),
    ("http://255.255.255.255/", Refused(Broadcast), Refused(Broadcast)),
    // Cloud metadata: refused always, in every spelling.
    ("http://169.254.169.254/latest/meta-data/", Refused(Metadata), Refused(Metadata)),
    ("http://2852039166/", Refused(Metadata), Refused(Metadata)),
    ("http://0xa9.0xfe.0xa9.0xfe/", Refused(Metadata), Refused(Metadata)),
    ("http://0251.0376.0251.0376/", Refused(Metadata), Refused(Metadata)),
    ("http://169.254.43518/", Refused(Metadata), Refused(Metadata)),
    ("http://[::ffff:169.254.169.254]/", Refused(Metadata), Refused(Metadata)),
    ("http://[::ffff:a9fe:a9fe]/", Refused(Metadata), Refused(Metadata)),
    ("http://[64:ff9b::a9fe:a9fe]/", Refused(Metadata), Refused(Metadata)),
    ("http://[fd00:ec2::254]/latest/meta-data/", Refused(Metadata), Refused(Metadata)),
    ("http://[fd20:ce::254]/", Refused(Metadata), Refused(Metadata)),
    ("http://169.254.170.2/v2/credentials", Refused(Metadata), Refused(Metadata)),
    ("http://169.254.0.23/", Refused(Metadata), Refused(Metadata)),
    ("http://100.100.100.200/latest/meta-data/", Refused(Metadata), Refused(Metadata)),
    ("http://168.63.129.16/machine?comp=goalstate", Refused(Metadata), Refused(Metadata)),
    ("http://192.0.0.192/", Refused(Metadata), Refused(Metadata)),
    ("http://metadata.google.internal/computeMetadata/v1/", Refused(Metadata), Refused(Metadata)),
    ("http://METADATA.GOOGLE.INTERNAL./", Refused(Metadata), Refused(Metadata)),
    ("http://metadata.goog/", Refused(Metadata), Refused(Metadata)),
    ("http://metadata/", Refused(Metadata), Refused(Metadata)),
    ("http://instance-data/", Refused(Metadata), Refused(Metadata)),
    ("http://instance-data.ec2.internal/", Refused(Metadata), Refused(Metadata)),
    ("http://metadata.tencentyun.com/", Refused(Metadata), Refused(Metadata)),
    // Not http(s).
    ("file:///etc/passwd", BadScheme, BadScheme),
    ("ftp://example.com/", BadScheme, BadScheme),
    ("gopher://127.0.0.1:6379/_INFO", BadScheme, BadScheme),
    ("data:text/plain,hello", BadScheme, BadScheme),
    ("javascript:alert(1)", BadScheme, BadScheme),
    ("ws://example.com/", BadScheme, BadScheme),
    // Not URLs, or no host.
    ("http://", Invalid, Invalid),
    ("http:///", Invalid, Invalid),
    ("", Invalid, Invalid),
    ("example.com", Invalid, Invalid),
    ("http://1.2.3.4.5/", Invalid, Invalid),
    ("http://256.0.0.1/", Invalid, Invalid),
    ("http://[::1/", Invalid, Invalid),
    ("http://exa mple.com/", Invalid, Invalid),
];

fn outcome(policy: &EgressPolicy, target: &str) -> Outcome {
    match policy.check_url(target) {
        Ok(_) => Allowed,
        Err(EgressError::Refused { class, .. }) => Refused(class),
        Err(EgressError::Scheme(_)) => BadScheme,
        Err(EgressError::InvalidUrl(_)) => Invalid,
        Err(other) => panic!("{target:?}: unexpected {other:?}"),
    }
}

#[test]
fn every_target_meets_its_expected_outcome_with_and_without_private_networks() {
    assert!(TARGETS.len() >= 40, "the table must cover at least 40 targets, it has {}", TARGETS.len());
    let strict = EgressPolicy::default();
    let open = EgressPolicy::with_private_networks(true);
    let mut failures = Vec::new();
    for &(target, by_default, with_private) in TARGETS {
        let got = (outcome(&strict, target), outcome(&open, target));
        if got != (by_default, with_private) {
            failures.push(format!("{target:?}: expected {:?}, got {got:?}", (by_default, with_private)));
        }
    }
    assert!(failures.is_empty(), "{} of {} targets:\n{}", failures.len(), TARGETS.len(), failures.join("\n"));
}

#[test]
fn odd_spellings_become_the_address_that_is_checked_and_connected_to() {
    let open = EgressPolicy::with_private_networks(true);
    let cases = [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://１２７.０.０.１/", "127.0.0.1"),
        ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "[::ffff:7f00:1]"),
        ("http://LocalHost./", "localhost."),
        ("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", "localhost"),
        ("http://evil.com@127.0.0.1/", "127.0.0.1"),
        ("http://127.0.0.1:80@example.com/", "example.com"),
    ];
    for (raw, host) in cases {
        let url = open.check_url(raw).unwrap();
        assert_eq!(url.host_str(), Some(host), "{raw}");
    }
}

#[test]
fn a_refusal_is_one_sentence_naming_the_address_and_the_way_out() {
    let strict = EgressPolicy::default();
    let open = EgressPolicy::with_private_networks(true);
    let message = |policy: &EgressPolicy, url: &str| policy.check_url(url).unwrap_err().to_string();
    assert_eq!(
        message(&strict, "http://127.0.0.1/"),
        "127.0.0.1 is a loopback address; set AGENTD_ALLOW_PRIVATE_NETWORKS=true to allow private networks, or list it in egress_allow"
    );
    assert_eq!(
        message(&strict, "http://[::ffff:10.0.0.1]/"),
        "::ffff:10.0.0.1 is a private address; set AGENTD_ALLOW_PRIVATE_NETWORKS=true to allow private networks, or list it in egress_allow"
    );
    assert_eq!(
        message(&open, "http://169.254.169.254/"),
        "169.254.169.254 is a cloud metadata address, which agentd never connects to"
    );
    assert_eq!(
        message(&open, "http://metadata.google.internal/"),
        "metadata.google.internal is a cloud metadata address, which agentd never connects to"
    );
    assert_eq!(message(&strict, "ftp://example.com/"), "the scheme \"ftp\" is not allowed; only http and https are");
    // The URL's path and query may be a secret (webhook tokens): errors name the host only.
    let error = message(&strict, "http://10.0.0.1/hooks/s3cr3t?token=s3cr3t");
    assert!(!error.contains("s3cr3t"), "{error}");
}

#[test]
fn allows_checks_a_bare_address() {
    let strict = EgressPolicy::default();
    let open = EgressPolicy::with_private_networks(true);
    assert_eq!(strict.allows("93.184.216.34".parse().unwrap()), Ok(()));
    assert_eq!(strict.allows("10.1.2.3".parse().unwrap()).unwrap_err().refused_class(), Some(Private));
    assert_eq!(open.allows("10.1.2.3".parse().unwrap()), Ok(()));
    assert_eq!(open.allows("fd00:ec2::254".parse().unwrap()).unwrap_err().refused_class(), Some(Metadata));
}
