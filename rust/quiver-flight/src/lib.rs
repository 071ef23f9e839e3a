//! quiver's Arrow Flight service over the core pipelines, the sink abstraction it
//! writes through, its Prometheus metrics, and a small client.

pub mod client;
pub mod metrics;
pub mod service;
pub mod sink;

/// Messages of `proto/quiver.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/quiver.v1.rs"));
}

pub use metrics::Metrics;
pub use service::{QuiverFlight, ServeError, ServiceConfig, serve};
pub use sink::{NoSink, Sink, SinkError, SinkReport};
