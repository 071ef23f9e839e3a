//! Typed errors of the core. Each names what failed and, where there is one, the fix.

use arrow::datatypes::DataType;
use std::fmt;

/// One difference between a query's result schema and the table it must feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaProblem {
    MissingColumn {
        name: String,
        expected: DataType,
    },
    UnexpectedColumn {
        name: String,
    },
    WrongType {
        name: String,
        found: DataType,
        expected: DataType,
    },
    Nullable {
        name: String,
    },
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingColumn { name, expected } => {
                write!(f, "column `{name}` ({expected}) is missing")
            }
            Self::UnexpectedColumn { name } => {
                write!(f, "column `{name}` is not in the sink table")
            }
            Self::WrongType {
                name,
                found,
                expected,
            } => write!(
                f,
                "column `{name}` is {found}, the sink table needs {expected} (add a CAST)"
            ),
            Self::Nullable { name } => write!(
                f,
                "column `{name}` may be NULL but is the sink table's key (filter or COALESCE it)"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("pipeline `{pipeline}`: SQL syntax error: {message}")]
    SqlSyntax { pipeline: String, message: String },

    #[error("pipeline `{pipeline}`: unknown column: {message}")]
    UnknownColumn { pipeline: String, message: String },

    #[error("pipeline `{pipeline}`: the SQL must be exactly one SELECT over `{table}`: {message}")]
    NotAQuery {
        pipeline: String,
        table: String,
        message: String,
    },

    #[error(
        "pipeline `{pipeline}`: the SQL result does not match sink table `{table}`: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    SchemaMismatch {
        pipeline: String,
        table: String,
        problems: Vec<SchemaProblem>,
    },

    #[error("pipeline `{pipeline}`: planning the SQL failed: {message}")]
    Plan { pipeline: String, message: String },

    #[error("input batch: {0}")]
    InputSchema(String),

    #[error("pipeline `{pipeline}`: executing the SQL on a batch failed: {message}")]
    Execute { pipeline: String, message: String },

    #[error("unknown pipeline `{name}`; known pipelines: {known}")]
    UnknownPipeline { name: String, known: String },

    #[error("pipeline `{0}` is defined twice; give each pipeline its own name")]
    DuplicatePipeline(String),

    #[error(
        "pipeline `{pipeline}` writes to sink `{sink}`, which is not configured (configured: {configured})"
    )]
    UnknownSink {
        pipeline: String,
        sink: String,
        configured: String,
    },

    #[error("query over the recent-output window failed: {0}")]
    Query(String),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
