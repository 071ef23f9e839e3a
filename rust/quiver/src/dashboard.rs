//! The dashboard of `quiver serve`, on its HTTP port: one page at `/` (embedded in the
//! binary, like its charting library, uPlot, vendored from npm by `scripts/vendor-ui`) and
//! the JSON it polls under `/api/`.

mod monitor;

pub use monitor::{Monitor, Probes};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use quiver_core::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Rows a query of the SQL box returns at most; the page says so.
pub const SQL_ROW_LIMIT: usize = 1000;
/// Characters of a binary or long text value shown (a reject's raw value can be large).
const VALUE_PREVIEW_CHARS: usize = 500;

/// A link the page shows to another tool of the stack (Spark UI, Airflow, a Kafka UI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub name: String,
    pub url: String,
}

impl Link {
    /// `Name=http://host:port,Other=https://...`, the form of `QUIVER_DASHBOARD_LINKS`.
    pub fn parse_list(text: &str) -> Result<Vec<Link>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (name, url) = item.split_once('=').ok_or_else(|| {
                    format!("dashboard link {item:?} is not NAME=URL (e.g. Spark UI=http://127.0.0.1:9090)")
                })?;
                Link {
                    name: name.trim().to_string(),
                    url: url.trim().to_string(),
                }
                .checked()
            })
            .collect()
    }

    /// Only http(s) URLs: anything else (`javascript:`) would run in the page.
    pub fn checked(self) -> Result<Link, String> {
        if self.name.is_empty() {
            return Err(format!("dashboard link to {} has no name", self.url));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "dashboard link {:?} must be an http:// or https:// URL, not {:?}",
                self.name, self.url
            ));
        }
        Ok(self)
    }
}

pub struct Dashboard {
    pub engine: Arc<Engine>,
    pub monitor: Arc<Monitor>,
    /// When set, `/api/` needs `Authorization: Bearer <token>` (the SQL box runs queries).
    pub token: Option<String>,
    pub links: Vec<Link>,
    pub window_rows: usize,
}

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE_CSS: &str = include_str!("../ui/style.css");
const UPLOT_JS: &str = include_str!("../ui/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../ui/vendor/uPlot.min.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The binary is the version: a page of a newer binary may not reuse these.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `/`, `/ui/*` and `/api/*`; merge it with the health and metrics routes.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    let api = Router::new()
        .route("/api/overview", get(overview))
        .route("/api/series", get(series))
        .route("/api/sql", post(sql))
        .route_layer(middleware::from_fn_with_state(
            dashboard.clone(),
            require_token,
        ))
        .with_state(dashboard);
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/ui/uPlot.iife.min.js",
            get(|| async { asset(UPLOT_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/uPlot.min.css",
            get(|| async { asset(UPLOT_CSS, "text/css; charset=utf-8") }),
        )
        .merge(api)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

async fn require_token(State(d): State<Arc<Dashboard>>, request: Request, next: Next) -> Response {
    if let Some(expected) = &d.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "this service needs a bearer token (the one in QUIVER_TOKEN or its token file)",
                );
            }
            Some(given) if !quiver_flight::token_matches(expected, given) => {
                return error(StatusCode::UNAUTHORIZED, "the bearer token is wrong");
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

async fn overview(State(d): State<Arc<Dashboard>>) -> Response {
    let pipelines: Vec<Value> = d
        .engine
        .pipelines()
        .map(|p| {
            json!({
                "name": p.name(),
                "rows": p.window().rows(),
                "rejects": p.rejects_window().rows(),
                "columns": p.output_schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pipelines": pipelines,
            "window_rows": d.window_rows,
            "sql_row_limit": SQL_ROW_LIMIT,
            "step_ms": monitor::STEP.as_millis() as u64,
            "links": d.links,
            "health": d.monitor.health(),
        }),
    )
}

async fn series(State(d): State<Arc<Dashboard>>, uri: Uri) -> Response {
    let after = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .map(str::parse::<i64>);
    let after = match after {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`after` must be a time in ms since the epoch",
            );
        }
    };
    json_response(
        StatusCode::OK,
        &json!({ "points": d.monitor.points_after(after) }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

async fn sql(State(d): State<Arc<Dashboard>>, body: Bytes) -> Response {
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"sql\": \"SELECT ...\"}}: {e}"),
            );
        }
    };
    if request.sql.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "the query is empty");
    }
    let started = Instant::now();
    match d.engine.query(&request.sql).await {
        Ok((schema, batches)) => {
            let rows_total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            match table_json(&batches, SQL_ROW_LIMIT) {
                Ok(rows) => json_response(
                    StatusCode::OK,
                    &json!({
                        "columns": schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect::<Vec<_>>(),
                        "rows": rows,
                        "rows_total": rows_total,
                        "limit": SQL_ROW_LIMIT,
                        "truncated": rows_total > SQL_ROW_LIMIT,
                        "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
                    }),
                ),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("formatting the result: {e}"),
                ),
            }
        }
        // DataFusion's own message: what the user wrote wrong, and where.
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// The first `limit` rows as JSON arrays: integers and floats as numbers, binary values
/// as (lossy) text, everything else as Arrow displays it; long values cut to a preview.
fn table_json(
    batches: &[RecordBatch],
    limit: usize,
) -> Result<Vec<Value>, arrow::error::ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        let take = batch.num_rows().min(limit - rows.len());
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(|c| json_values(&c.slice(0, take)))
            .collect::<Result<_, _>>()?;
        for i in 0..take {
            rows.push(Value::Array(columns.iter().map(|c| c[i].clone()).collect()));
        }
        if rows.len() == limit {
            break;
        }
    }
    Ok(rows)
}

fn json_values(array: &ArrayRef) -> Result<Vec<Value>, arrow::error::ArrowError> {
    let valid = |i: usize, v: Value| if array.is_valid(i) { v } else { Value::Null };
    let t = array.data_type();
    Ok(if t.is_integer() {
        let a = cast(array, &DataType::Int64)?;
        let a = a.as_primitive::<Int64Type>();
        (0..a.len()).map(|i| valid(i, json!(a.value(i)))).collect()
    } else if t.is_floating() {
        let a = cast(array, &DataType::Float64)?;
        let a = a.as_primitive::<Float64Type>();
        // NaN and infinities have no JSON form: null.
        (0..a.len()).map(|i| valid(i, json!(a.value(i)))).collect()
    } else if matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) {
        let a = cast(array, &DataType::Binary)?;
        let a = a.as_binary::<i32>();
        (0..a.len())
            .map(|i| {
                valid(
                    i,
                    Value::String(preview(&String::from_utf8_lossy(a.value(i)))),
                )
            })
            .collect()
    } else {
        let f = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
        (0..array.len())
            .map(|i| valid(i, Value::String(preview(&f.value(i).to_string()))))
            .collect()
    })
}

fn preview(text: &str) -> String {
    match text.char_indices().nth(VALUE_PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
