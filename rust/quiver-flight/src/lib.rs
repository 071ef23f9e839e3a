//! quiver's Arrow Flight service over the core pipelines, its Prometheus metrics, and a
//! small client.

pub mod client;
mod ipc;
pub mod metrics;
pub mod service;

/// Messages of `proto/quiver.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/quiver.v1.rs"));
}

pub use metrics::Metrics;
pub use service::{
    DEFAULT_BATCHES_IN_FLIGHT, QuiverFlight, ServeError, ServiceConfig, TlsIdentity, serve,
    token_matches,
};
