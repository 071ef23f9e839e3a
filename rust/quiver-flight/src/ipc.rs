//! The Arrow IPC messages of an incoming Flight stream, read into record batches with
//! each message body used where it lies.
//!
//! arrow-flight's decoder copies a body into a new allocation unless it starts on a
//! 64-byte boundary, and a body inside a gRPC message almost never does: that is one more
//! copy of every input batch (11 MB for 10,000 randomuser records). arrow-ipc can read
//! the body in place and copy only the buffers whose type needs an alignment the body
//! does not give (here the offsets of the binary and string columns, 40 KB per 10,000
//! rows). Union columns are the exception: arrow-ipc takes a dense union's offsets as
//! they lie, unaligned, so a stream whose schema holds a union gets the aligned copy.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::reader::{RecordBatchDecoder, read_dictionary_impl};
use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::FlightData;
use arrow_flight::error::FlightError;
use std::collections::HashMap;
use std::sync::Arc;

/// The state of one stream: its schema and dictionaries.
#[derive(Default)]
pub struct IpcReader {
    schema: Option<SchemaRef>,
    dictionaries: HashMap<i64, ArrayRef>,
    /// Whether each body is copied to an aligned allocation (a schema with a union).
    copy_bodies: bool,
}

impl IpcReader {
    /// The record batch `data` carries, or `None` for a schema, a dictionary, or a
    /// message with no IPC header (a descriptor or app_metadata alone, as C++ and
    /// pyarrow clients send first).
    pub fn read(&mut self, data: FlightData) -> Result<Option<RecordBatch>, FlightError> {
        if data.data_header.is_empty() {
            return Ok(None);
        }
        let message = root_as_message(&data.data_header).map_err(|e| {
            FlightError::DecodeError(format!("a message's IPC header is not valid: {e}"))
        })?;
        match message.header_type() {
            MessageHeader::NONE => Ok(None),
            MessageHeader::Schema => {
                if self.schema.is_some() {
                    return Err(FlightError::protocol(
                        "a second Schema message: a stream sends its schema once, before its first batch",
                    ));
                }
                let schema = Schema::try_from(&data)?;
                self.copy_bodies = schema
                    .flattened_fields()
                    .iter()
                    .any(|f| is_union(f.data_type()));
                self.schema = Some(Arc::new(schema));
                Ok(None)
            }
            MessageHeader::DictionaryBatch => {
                let schema = self.schema_for("a DictionaryBatch")?;
                let dictionary = message.header_as_dictionary_batch().ok_or_else(|| {
                    FlightError::DecodeError("a DictionaryBatch message without its header".into())
                })?;
                read_dictionary_impl(
                    &self.body(&data),
                    dictionary,
                    &schema,
                    &mut self.dictionaries,
                    &message.version(),
                    false,
                    Default::default(),
                )?;
                Ok(None)
            }
            MessageHeader::RecordBatch => {
                let schema = self.schema_for("a RecordBatch")?;
                let batch = message.header_as_record_batch().ok_or_else(|| {
                    FlightError::DecodeError("a RecordBatch message without its header".into())
                })?;
                let body = self.body(&data);
                let batch = RecordBatchDecoder::try_new(
                    &body,
                    batch,
                    schema,
                    &self.dictionaries,
                    &message.version(),
                )?
                .read_record_batch()?;
                Ok(Some(batch))
            }
            other => Err(FlightError::protocol(format!(
                "unexpected IPC message {}: a stream carries a Schema, then DictionaryBatch and RecordBatch messages",
                other.variant_name().unwrap_or("of an unknown type")
            ))),
        }
    }

    fn schema_for(&self, what: &str) -> Result<SchemaRef, FlightError> {
        self.schema.clone().ok_or_else(|| {
            FlightError::protocol(format!("{what} came before the stream's Schema message"))
        })
    }

    fn body(&self, data: &FlightData) -> Buffer {
        if self.copy_bodies {
            Buffer::from(data.data_body.as_ref())
        } else {
            Buffer::from(data.data_body.clone())
        }
    }
}

/// Whether a field (as `Schema::flattened_fields` lists them, children included) is a
/// union; a dictionary's value type is not a field of its own there, so it is looked into.
fn is_union(data_type: &DataType) -> bool {
    match data_type {
        DataType::Union(..) => true,
        DataType::Dictionary(_, values) => is_union(values),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        AsArray, BinaryArray, DictionaryArray, Int32Array, StringArray, UnionArray,
    };
    use arrow::buffer::ScalarBuffer;
    use arrow::datatypes::{Field, Int32Type, UnionFields};
    use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
    use bytes::Bytes;
    use futures::{TryStreamExt, stream};

    /// The messages of a stream carrying `batch`: its schema, its dictionaries (sent as
    /// dictionaries), the batch.
    fn messages(batch: &RecordBatch) -> Vec<FlightData> {
        let encoder = FlightDataEncoderBuilder::new()
            .with_dictionary_handling(DictionaryHandling::Resend)
            .build(stream::iter([Ok(batch.clone())]));
        futures::executor::block_on(encoder.try_collect()).unwrap()
    }

    /// The messages of a stream carrying `batch`, each body moved to an odd address, as
    /// a body inside a gRPC message usually lies.
    fn misaligned_messages(batch: &RecordBatch) -> Vec<FlightData> {
        messages(batch)
            .into_iter()
            .map(|mut m| {
                let mut shifted = vec![0u8; m.data_body.len() + 1];
                shifted[1..].copy_from_slice(&m.data_body);
                m.data_body = Bytes::from(shifted).slice(1..);
                m
            })
            .collect()
    }

    fn read_all(messages: Vec<FlightData>) -> Vec<RecordBatch> {
        let mut reader = IpcReader::default();
        messages
            .into_iter()
            .filter_map(|m| reader.read(m).unwrap())
            .collect()
    }

    #[test]
    fn a_misaligned_body_is_read_in_place_and_only_what_needs_alignment_is_copied() {
        let values = BinaryArray::from_iter_values([&b"{\"a\":1}"[..], b"{}", b"xyz"]);
        let offsets = Int32Array::from(vec![7, 8, 9]);
        let batch = RecordBatch::try_from_iter([
            ("value", Arc::new(values) as ArrayRef),
            ("offset", Arc::new(offsets) as ArrayRef),
        ])
        .unwrap();
        let messages = misaligned_messages(&batch);
        let body = messages.last().unwrap().data_body.clone();
        assert_ne!(
            body.as_ptr() as usize % 4,
            0,
            "the test needs a misaligned body"
        );

        let read = read_all(messages);
        assert_eq!(read, vec![batch]);
        let bytes = read[0].column(0).as_binary::<i32>().values().as_ptr_range();
        let body = body.as_ptr_range();
        assert!(
            body.start <= bytes.start && bytes.end <= body.end,
            "the binary values were copied out of the message body"
        );
        let ints = read[0].column(1).as_primitive::<Int32Type>().values();
        assert_eq!(
            ints.inner().as_ptr() as usize % 4,
            0,
            "int32s must be aligned"
        );
    }

    #[test]
    fn a_stream_with_a_union_or_a_dictionary_is_read_whole() {
        let fields = UnionFields::try_new(
            [0, 1],
            [
                Field::new("n", DataType::Int32, false),
                Field::new("s", DataType::Utf8, false),
            ],
        )
        .unwrap();
        let union = UnionArray::try_new(
            fields,
            ScalarBuffer::from(vec![0i8, 1, 0]),
            Some(ScalarBuffer::from(vec![0i32, 0, 1])),
            vec![
                Arc::new(Int32Array::from(vec![5, 6])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .unwrap();
        let topics: DictionaryArray<Int32Type> =
            vec!["users", "users", "other"].into_iter().collect();
        let batch = RecordBatch::try_from_iter([
            ("u", Arc::new(union) as ArrayRef),
            ("topic", Arc::new(topics) as ArrayRef),
        ])
        .unwrap();
        assert_eq!(read_all(misaligned_messages(&batch)), vec![batch]);
    }

    #[test]
    fn a_batch_before_the_schema_or_a_second_schema_is_refused() {
        let batch = RecordBatch::try_from_iter([(
            "offset",
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        let [schema, data] = <[FlightData; 2]>::try_from(messages(&batch)).unwrap();

        let err = IpcReader::default().read(data).unwrap_err();
        assert!(
            err.to_string().contains("came before the stream's Schema"),
            "{err}"
        );

        let mut reader = IpcReader::default();
        assert!(reader.read(schema.clone()).unwrap().is_none());
        let err = reader.read(schema).unwrap_err();
        assert!(err.to_string().contains("a second Schema message"), "{err}");
    }
}
