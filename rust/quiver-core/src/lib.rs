//! quiver's pure core: the randomuser 1.4 Arrow schemas, the decoder from Kafka-shaped
//! Arrow batches into typed rows (with a rejects batch for records that cannot be
//! decoded), SQL pipelines planned once per process and reused per batch, and the sink
//! interface the I/O crates implement.
//!
//! Nothing here touches the network or the file system; the service and sink crates
//! drive it.

pub mod decode;
pub mod error;
pub mod pipeline;
pub mod record;
pub mod schema;
pub mod sink;
pub mod window;

pub use decode::{Decoded, UserFields, decode_user_fields, decode_users};
pub use error::{CoreError, SchemaProblem};
pub use pipeline::{Decoder, Engine, Pipeline, PipelineSpec, Processed, StageTimings};
pub use sink::{BatchRun, NoSink, Sink, SinkError, SinkReport, SinkSet, Stored};
