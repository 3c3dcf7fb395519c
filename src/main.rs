fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = callmood::cli::Cli::parse_sourced();
    match callmood::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if callmood::cli::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callmood: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
