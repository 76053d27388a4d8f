#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIVEMIND_LOG").unwrap_or_else(|_| "hivemind=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        // NO_COLOR (https://no-color.org) and non-terminals get plain text.
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // ring is the one crypto provider of the binary (rustls everywhere); reqwest is built
    // without one of its own, so a client built without a configuration of ours finds it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    hivemind_cli::run(hivemind::local::Commands).await
}
