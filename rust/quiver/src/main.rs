//! The `quiver` binary: wires the library crates into subcommands.

mod batch;
mod dashboard;
mod http;
mod produce;
mod serve;
mod settings;
mod sql;

// glibc returns every allocation above 32 MiB to the kernel when it is freed, so each
// large micro-batch paid for fresh, zeroed pages (a fifth of a 100,000-record exchange);
// mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "quiver",
    version,
    about = "Real-time user-record pipeline: Kafka, Spark, Arrow Flight, DataFusion, Cassandra"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print quiver's version.
    Version,
    /// Send user records (randomuser.me or synthetic) to Kafka.
    Produce(Box<produce::ProduceArgs>),
    /// Run the transformation service (Arrow Flight in, DataFusion SQL, sinks out).
    Serve(Box<serve::Args>),
    /// Transform a batch of records with the pipeline SQL and load it into Postgres.
    Batch(Box<batch::Args>),
    /// Run SQL over a running service's recent output and print a table.
    Sql(sql::Args),
}

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files or pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Version => {
            println!("quiver {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce(args) => produce::run(*args),
        Command::Serve(args) => serve::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Batch(args) => batch::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Sql(args) => sql::run(args).map(|()| ExitCode::SUCCESS),
    }
}
