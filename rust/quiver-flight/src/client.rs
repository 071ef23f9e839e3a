//! A Flight client for quiver servers (used by `quiver sql` and the tests).

use crate::proto::SqlQuery;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::{FlightClient, Ticket, error::FlightError};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

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
    #[error(
        "`{endpoint}` is a TLS endpoint: give the certificate of the CA that signed the server's (--tls-ca-file, QUIVER_TLS_CA_FILE)"
    )]
    NoCa { endpoint: String },
    #[error("the token is not a valid header value")]
    BadToken,
    #[error("{0}")]
    Flight(#[from] FlightError),
}

/// Connects with message limits raised to `max_message_bytes` and, when given, the
/// bearer token on every call. A `grpc+tls://` endpoint needs `tls_ca_pem`, the PEM
/// certificate of the CA that signed the server's.
pub async fn connect(
    endpoint: &str,
    token: Option<&str>,
    tls_ca_pem: Option<&[u8]>,
    max_message_bytes: usize,
) -> Result<FlightClient, ClientError> {
    let bad = |source| ClientError::BadEndpoint {
        endpoint: endpoint.into(),
        source,
    };
    // Large windows for large responses (rows, SQL results), as on the server.
    let mut channel = Endpoint::from_shared(tonic_url(endpoint))
        .map_err(bad)?
        .initial_stream_window_size(crate::service::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(crate::service::CONNECTION_WINDOW_BYTES);
    if endpoint.starts_with("grpc+tls://") || endpoint.starts_with("https://") {
        let ca = tls_ca_pem.ok_or_else(|| ClientError::NoCa {
            endpoint: endpoint.into(),
        })?;
        channel = channel
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
            .map_err(bad)?;
    }
    let channel = channel
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

/// Flight clients in other languages (pyarrow, the Spark job) name endpoints
/// `grpc://host:port` (or `grpc+tcp://`) and `grpc+tls://host:port`; tonic wants the
/// `http://` and `https://` forms. Both are accepted so one endpoint setting serves every
/// client.
fn tonic_url(endpoint: &str) -> String {
    match endpoint.split_once("://") {
        Some(("grpc" | "grpc+tcp", rest)) => format!("http://{rest}"),
        Some(("grpc+tls", rest)) => format!("https://{rest}"),
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
