//! `quiver sql "<query>"`: SQL over the recent output of a running `quiver serve`.

use anyhow::{Context, Result};
use arrow::util::pretty::pretty_format_batches;

#[derive(clap::Args)]
pub struct Args {
    /// The query, e.g. "SELECT count(*) FROM users". Each pipeline's recent output is a
    /// table named after the pipeline.
    query: String,
    /// The service's Flight endpoint (grpc://host:port, or grpc+tls://host:port when it
    /// speaks TLS); the same variable points the Spark job at the service.
    #[arg(
        long,
        env = "QUIVER_FLIGHT_ENDPOINT",
        default_value = "grpc://127.0.0.1:50051"
    )]
    endpoint: String,
    /// Bearer token, when the service requires one.
    #[arg(long, env = "QUIVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate of the CA that signed the service's, for grpc+tls:// endpoints.
    #[arg(long, env = "QUIVER_TLS_CA_FILE")]
    tls_ca_file: Option<std::path::PathBuf>,
    /// Largest message accepted from the server.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_message_bytes: usize,
}

pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let tls_ca = args
        .tls_ca_file
        .as_deref()
        .map(|path| {
            std::fs::read(path)
                .with_context(|| format!("reading the TLS CA certificate {}", path.display()))
        })
        .transpose()?;
    rt.block_on(async {
        let mut client = quiver_flight::client::connect(
            &args.endpoint,
            args.token.as_deref(),
            tls_ca.as_deref(),
            args.max_message_bytes,
        )
        .await?;
        let (schema, batches) = quiver_flight::client::sql(&mut client, &args.query)
            .await
            .with_context(|| format!("query failed on {}", args.endpoint))?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if batches.is_empty() {
            if let Some(schema) = schema {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                println!("{}", pretty_format_batches(&[empty])?);
            }
        } else {
            println!("{}", pretty_format_batches(&batches)?);
        }
        eprintln!("{rows} row(s)");
        Ok(())
    })
}
