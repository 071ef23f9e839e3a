//! The HTTP side of the long-running subcommands (`serve`, `produce --metrics-addr`).

use axum::Router;
use axum::routing::get;

/// `/healthz` answers `ok`; `/metrics` answers the Prometheus text that `render` returns.
pub fn health_and_metrics(render: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let text = render();
                async move { text }
            }),
        )
}
