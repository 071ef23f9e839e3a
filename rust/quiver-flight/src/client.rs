//! A Flight client for quiver servers (used by `quiver sql` and the tests).

use crate::proto::SqlQuery;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::{FlightClient, Ticket, error::FlightError};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "`{endpoint}` is not a valid endpoint URL (e.g. grpc://127.0.0.1:50051 or http://127.0.0.1:50051): {source}"
    )]
    BadEndpoint {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error(
        "cannot connect to the quiver server at {endpoint} (is `quiver serve` running?): {source}"
    )]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("the token is not a valid header value")]
    BadToken,
    #[error("{0}")]
    Flight(#[from] FlightError),
}

/// Connects with message limits raised to `max_message_bytes` and, when given, the
/// bearer token on every call.
pub async fn connect(
    endpoint: &str,
    token: Option<&str>,
    max_message_bytes: usize,
) -> Result<FlightClient, ClientError> {
    let channel = Endpoint::from_shared(tonic_url(endpoint))
        .map_err(|source| ClientError::BadEndpoint {
            endpoint: endpoint.into(),
            source,
        })?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.into(),
            source,
        })?;
    let inner = arrow_flight::flight_service_client::FlightServiceClient::new(channel)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let mut client = FlightClient::new_from_inner(inner);
    if let Some(t) = token {
        client
            .add_header("authorization", &format!("Bearer {t}"))
            .map_err(|_| ClientError::BadToken)?;
    }
    Ok(client)
}

/// Flight clients in other languages (pyarrow, the Spark job) name a plaintext endpoint
/// `grpc://host:port` or `grpc+tcp://host:port`; tonic wants the `http://` form. Both are
/// accepted so one endpoint setting serves every client.
fn tonic_url(endpoint: &str) -> String {
    match endpoint.split_once("://") {
        Some(("grpc" | "grpc+tcp", rest)) => format!("http://{rest}"),
        _ => endpoint.to_string(),
    }
}

/// Runs SQL over the server's recent-output windows.
pub async fn sql(
    client: &mut FlightClient,
    query: &str,
) -> Result<(Option<SchemaRef>, Vec<RecordBatch>), ClientError> {
    let ticket = Ticket::new(
        SqlQuery {
            sql: query.to_string(),
        }
        .encode_to_vec(),
    );
    let mut stream = client.do_get(ticket).await?;
    let mut batches = Vec::new();
    while let Some(b) = stream.try_next().await? {
        batches.push(b);
    }
    Ok((stream.schema().cloned(), batches))
}

#[cfg(test)]
mod tests {
    use super::tonic_url;

    #[test]
    fn grpc_endpoints_are_accepted_in_the_form_other_flight_clients_use() {
        assert_eq!(
            tonic_url("grpc://127.0.0.1:50051"),
            "http://127.0.0.1:50051"
        );
        assert_eq!(tonic_url("grpc+tcp://h:1"), "http://h:1");
        assert_eq!(
            tonic_url("http://127.0.0.1:50051"),
            "http://127.0.0.1:50051"
        );
        assert_eq!(tonic_url("https://h:443"), "https://h:443");
    }
}
