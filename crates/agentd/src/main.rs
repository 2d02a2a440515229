//! The `agentd` binary: parses the command line and hands over to [`agentd::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    agentd::install_tls();
    agentd::cli::main().await
}
