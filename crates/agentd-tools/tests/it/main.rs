//! agentd-tools at its boundary: HTTP tools against a loopback fixture web server (`http`), the
//! stdio MCP fixture server `agentd-mcp-fixture` (`mcp_stdio`), and a streamable-HTTP MCP server
//! served in the test (`mcp_http`). Every test checks that a private variable's value appears in
//! no output, error or debug line.

mod http;
mod mcp_http;
mod mcp_stdio;

use std::collections::BTreeMap;
use std::time::Duration;

use agentd_egress::EgressPolicy;
use agentd_tools::{DebugSink, ToolLimits, ToolRunner, Variables};
use tokio::sync::mpsc;

/// The private value every test hides.
pub const SECRET: &str = "s3cr3t-Value/with spaces&more";

/// A runner that may reach loopback, with `limits`.
pub fn runner(limits: ToolLimits) -> ToolRunner {
    ToolRunner::new(EgressPolicy::with_private_networks(true), limits).expect("a runner")
}

/// Short limits, so failures show quickly.
pub fn short_limits() -> ToolLimits {
    ToolLimits {
        http_timeout: Duration::from_secs(5),
        mcp_start_timeout: Duration::from_secs(20),
        mcp_call_timeout: Duration::from_secs(10),
        mcp_shutdown_timeout: Duration::from_secs(10),
        ..ToolLimits::default()
    }
}

/// Variables with the private `api_key` = [`SECRET`], plus the given plain and environment ones.
pub fn variables(plain: &[(&str, &str)], environment: &[(&str, &str)]) -> Variables {
    let map =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    Variables {
        variables: map(plain),
        private_variables: map(&[("api_key", SECRET)]),
        environment_variables: map(environment),
    }
}

/// A debug sink and a way to collect what reached it.
pub struct Lines {
    receiver: mpsc::Receiver<String>,
}

impl Lines {
    /// A sink with room for every line a test makes.
    pub fn new() -> (DebugSink, Lines) {
        let (sink, receiver) = DebugSink::channel(1000);
        (sink, Lines { receiver })
    }

    /// The lines so far.
    pub fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.receiver.try_recv() {
            lines.push(line);
        }
        lines
    }
}

/// Panics if `text` holds the secret in any form a masker knows.
pub fn assert_no_secret(text: &str) {
    for form in [SECRET, "s3cr3t-Value%2Fwith%20spaces%26more", "s3cr3t"] {
        assert!(!text.contains(form), "the secret leaked ({form}) in: {text}");
    }
}
