//! The `chat` binary.

use std::io::IsTerminal;

use chat_server::app::StartError;
use chat_server::config::Config;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "chat", version, about = "Real-time chat server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the WebSocket gateway and the web client.
    Serve(Config),
    /// Run the dataset sink (DESIGN.md §10) alone: consume the Kafka log as group
    /// `dataset` and write the training-data table under CHAT_DATASET_DIR.
    Pipeline(Config),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(config) => {
            exit_if_refused(config.validate());
            run(chat_server::app::serve(config, shutdown_signal()))
        }
        Command::Pipeline(config) => {
            let needs_dir = || match config.dataset_dir {
                Some(_) => Ok(()),
                None => Err(
                    "chat pipeline needs CHAT_DATASET_DIR (where the table is written)".to_owned(),
                ),
            };
            exit_if_refused(
                config
                    .validate()
                    .and_then(|()| needs_dir())
                    .and_then(|()| config.validate_dataset()),
            );
            run(chat_server::app::pipeline(config, shutdown_signal()))
        }
    }
}

/// A configuration refused: says why and exits with status 2, before anything starts.
fn exit_if_refused(checked: Result<(), String>) {
    if let Err(problem) = checked {
        eprintln!("chat: {problem}");
        std::process::exit(2);
    }
}

/// Runs `work` to its end on a multi-threaded runtime.
fn run(work: impl Future<Output = Result<(), StartError>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
