//! The `agentd` binary: parses the command line and hands over to [`agentd::cli`].

/// jemalloc with its background thread returning freed memory to the system (after ~10 s):
/// with glibc's malloc the memory of clients that left stayed with the process (a peak of
/// connections was RSS for good), and a silent connection cost three times as much (measured
/// with `agentd-bench connections`; ARCHITECTURE.md, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    agentd::install_tls();
    agentd::cli::main().await
}
