//! Record batches between pyarrow and Rust through the Arrow C data interface: the
//! buffers are shared, never copied.

use arrow::array::{Array, RecordBatch, StructArray};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};

/// Takes any object that exports `__arrow_c_array__` (a `pyarrow.RecordBatch`, a
/// nanoarrow or polars batch...) as a Rust batch over the same buffers.
pub fn import_batch(obj: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    if !obj.hasattr("__arrow_c_array__")? {
        return Err(PyTypeError::new_err(format!(
            "expected an Arrow record batch (an object with __arrow_c_array__, such as pyarrow.RecordBatch), got {}",
            obj.get_type().name()?
        )));
    }
    let capsules = obj.call_method0("__arrow_c_array__")?;
    let capsules = capsules.cast::<PyTuple>()?;
    let schema_capsule = capsules.get_item(0)?;
    let array_capsule = capsules.get_item(1)?;
    let schema_capsule = schema_capsule.cast::<PyCapsule>()?;
    let array_capsule = array_capsule.cast::<PyCapsule>()?;
    let schema_ptr = schema_capsule
        .pointer_checked(Some(c"arrow_schema"))?
        .cast::<FFI_ArrowSchema>();
    let array_ptr = array_capsule
        .pointer_checked(Some(c"arrow_array"))?
        .cast::<FFI_ArrowArray>();
    // SAFETY: the capsules hold valid C-interface structs (checked by name). The array
    // is moved out, leaving a released one, as the PyCapsule protocol prescribes; the
    // schema stays owned by its capsule and is only read.
    let (array, schema) = unsafe {
        (
            std::ptr::replace(array_ptr.as_ptr(), FFI_ArrowArray::empty()),
            schema_ptr.as_ref(),
        )
    };
    let arrow_schema = Schema::try_from(schema)
        .map_err(|e| PyValueError::new_err(format!("the batch's Arrow schema: {e}")))?;
    // SAFETY: `array` and `schema` describe the same data, as exported together.
    let data = unsafe { from_ffi(array, schema) }
        .map_err(|e| PyValueError::new_err(format!("importing the Arrow batch: {e}")))?;
    let columns = StructArray::from(data);
    if columns.null_count() > 0 {
        return Err(PyValueError::new_err(
            "the Arrow batch has top-level nulls; pass a record batch, not a nullable struct array",
        ));
    }
    RecordBatch::try_new(SchemaRef::new(arrow_schema), columns.columns().to_vec())
        .map_err(|e| PyValueError::new_err(format!("importing the Arrow batch: {e}")))
}

/// Hands a Rust batch to pyarrow as a `pyarrow.RecordBatch` over the same buffers.
pub fn export_batch<'py>(py: Python<'py>, batch: &RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let data = StructArray::from(batch.clone()).into_data();
    let array = FFI_ArrowArray::new(&data);
    let schema = FFI_ArrowSchema::try_from(batch.schema().as_ref())
        .map_err(|e| PyValueError::new_err(format!("exporting the Arrow schema: {e}")))?;
    let schema = PyCapsule::new_with_value(py, schema, c"arrow_schema")?;
    let array = PyCapsule::new_with_value(py, array, c"arrow_array")?;
    py.import("pyarrow")?
        .getattr("RecordBatch")?
        .call_method1("_import_from_c_capsule", (schema, array))
}

/// Hands a Rust schema to pyarrow as a `pyarrow.Schema`.
pub fn export_schema<'py>(py: Python<'py>, schema: &Schema) -> PyResult<Bound<'py, PyAny>> {
    let schema = FFI_ArrowSchema::try_from(schema)
        .map_err(|e| PyValueError::new_err(format!("exporting the Arrow schema: {e}")))?;
    let schema = PyCapsule::new_with_value(py, schema, c"arrow_schema")?;
    py.import("pyarrow")?
        .getattr("Schema")?
        .call_method1("_import_from_c_capsule", (schema,))
}
