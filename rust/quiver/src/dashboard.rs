//! The dashboard of `quiver serve`, on its HTTP port: one page at `/` (embedded in the
//! binary, like its charting library, uPlot, vendored from npm by `scripts/vendor-ui`) and
//! the JSON it polls under `/api/`.

mod monitor;

pub use monitor::{Monitor, PostgresProbe, Probes};

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

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::{NoSink, PipelineSpec, SinkSet};
    use quiver_flight::Metrics;
    use reqwest::StatusCode;

    /// A dashboard over a `users` pipeline whose window holds 1,200 synthetic users and one
    /// reject, served on a free port; returns its base URL.
    async fn serve(token: Option<&str>) -> String {
        let spec = PipelineSpec {
            sinks: vec!["none".into()],
            ..PipelineSpec::users()
        };
        let engine = Arc::new(Engine::new(vec![spec], 10_000).await.unwrap());
        let pipeline = engine.pipeline("users").unwrap();
        let sinks = SinkSet::new(&engine, vec![Arc::new(NoSink)]).unwrap();
        let mut values: Vec<Vec<u8>> = quiver_testkit::users(3, 1200)
            .into_iter()
            .map(String::into_bytes)
            .collect();
        values.push(b"{not json".to_vec());
        let values: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_slice())).collect();
        let batch = quiver_testkit::kafka_batch(&values, 1, 0);
        let processed = pipeline.process(&batch).await.unwrap();
        sinks
            .store_processed(&pipeline, processed, false)
            .await
            .unwrap();

        let metrics = Metrics::new().unwrap();
        let probes = Probes {
            cassandra: None,
            kafka: None,
            spark_ui: None,
            postgres: None,
        };
        let dashboard = Arc::new(Dashboard {
            engine,
            monitor: Arc::new(Monitor::new(metrics, &probes).unwrap()),
            token: token.map(str::to_string),
            links: vec![Link {
                name: "Spark UI".into(),
                url: "http://127.0.0.1:9090".into(),
            }],
            window_rows: 10_000,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, router(dashboard)).into_future());
        base
    }

    async fn query(base: &str, sql: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(format!("{base}/api/sql"))
            .body(json!({ "sql": sql }).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_library_are_served_from_the_binary() {
        let base = serve(None).await;
        for (path, needle) in [
            ("/", "/ui/uPlot.iife.min.js"),
            ("/ui/app.js", "/api/series"),
            ("/ui/uPlot.iife.min.js", "uPlot"),
        ] {
            let body = reqwest::get(format!("{base}{path}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(body.contains(needle), "{path} lacks {needle}");
        }
        let overview: Value = reqwest::get(format!("{base}/api/overview"))
            .await
            .unwrap()
            .json_text()
            .await;
        assert_eq!(overview["pipelines"][0]["name"], "users");
        assert_eq!(overview["pipelines"][0]["rows"], 1200);
        assert_eq!(overview["pipelines"][0]["rejects"], 1);
        assert_eq!(overview["links"][0]["url"], "http://127.0.0.1:9090");
        assert_eq!(overview["health"]["kafka"]["state"], "off");
    }

    #[tokio::test]
    async fn sql_returns_typed_rows_capped_and_datafusion_s_error() {
        let base = serve(None).await;
        let (status, r) = query(
            &base,
            "SELECT gender, count(*) AS n FROM users GROUP BY gender ORDER BY gender",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["columns"][1]["name"], "n");
        let total: i64 = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row[1].as_i64().unwrap())
            .sum();
        assert_eq!(total, 1200, "counts are JSON numbers: {r}");

        let (_, r) = query(&base, "SELECT id FROM users").await;
        assert_eq!(r["rows_total"], 1200);
        assert_eq!(r["rows"].as_array().unwrap().len(), SQL_ROW_LIMIT);
        assert_eq!(r["truncated"], true);

        // A reject's raw value reads as the text it was.
        let (_, r) = query(&base, "SELECT raw_value, reason FROM users_rejects").await;
        assert_eq!(r["rows"][0][0], "{not json", "{r}");

        let (status, r) = query(&base, "SELECT nope FROM users").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = r["error"].as_str().unwrap();
        assert!(
            message.contains("nope"),
            "DataFusion's own words: {message}"
        );

        let (status, r) = query(&base, "DROP TABLE users").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "read-only: {r}");
    }

    #[tokio::test]
    async fn with_a_token_the_api_needs_it_and_the_page_does_not() {
        let base = serve(Some("s3cret")).await;
        let client = reqwest::Client::new();
        let page = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let text = page.text().await.unwrap();
        assert!(!text.contains("s3cret"));
        for auth in [None, Some("Bearer wrong")] {
            let mut request = client.get(format!("{base}/api/overview"));
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        }
        let response = client
            .post(format!("{base}/api/sql"))
            .body(r#"{"sql": "SELECT 1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let response = client
            .get(format!("{base}/api/overview"))
            .header("Authorization", "Bearer s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.text().await.unwrap().contains("s3cret"));
    }

    #[test]
    fn links_are_name_equals_http_url() {
        let links = Link::parse_list("Spark UI=http://127.0.0.1:9090, Airflow=https://af.example/")
            .unwrap();
        assert_eq!(
            links
                .iter()
                .map(|l| (l.name.as_str(), l.url.as_str()))
                .collect::<Vec<_>>(),
            [
                ("Spark UI", "http://127.0.0.1:9090"),
                ("Airflow", "https://af.example/")
            ]
        );
        let err = Link::parse_list("x=javascript:alert(1)").unwrap_err();
        assert!(err.contains("http:// or https://"), "{err}");
        let err = Link::parse_list("http://no-name").unwrap_err();
        assert!(err.contains("NAME=URL"), "{err}");
    }

    /// reqwest is built without its `json` feature here.
    trait JsonText {
        async fn json_text(self) -> Value;
    }

    impl JsonText for reqwest::Response {
        async fn json_text(self) -> Value {
            serde_json::from_str(&self.text().await.unwrap()).unwrap()
        }
    }
}
