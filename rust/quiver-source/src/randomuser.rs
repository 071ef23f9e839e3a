//! Client of the randomuser.me API (version 1.4, pinned).
//!
//! One request fetches a page of up to 5000 users. A page is retried whole, so a failed
//! attempt never forwards anything and a retried one never forwards twice; with a seed the
//! API returns the same page again, which keeps retries and replays idempotent. Each result
//! is forwarded as the exact bytes the API sent (only insignificant whitespace is removed):
//! the JSON is never parsed into a value and re-serialised.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::Mutex;

use crate::Record;

/// The API refuses more results than this in one call.
pub const MAX_PAGE_SIZE: u32 = 5000;

#[derive(Debug, Clone)]
pub struct RandomUserConfig {
    /// Ends with `/api/1.4/` for the real service.
    pub base_url: String,
    /// Users per request, at most [`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// Makes pages reproducible. Without one the client picks a random seed, because the
    /// API ignores `page` when no seed is given and retries would then fetch other users.
    pub seed: Option<String>,
    /// Comma-separated nationalities (`nat=gb,fr`), or all of them.
    pub nat: Option<String>,
    pub connect_timeout: Duration,
    /// Whole request including the body (a 5000-user page is about 5 MB).
    pub request_timeout: Duration,
    /// Attempts per page, the first included.
    pub max_attempts: u32,
    /// First back-off after a 5xx, network, truncated or malformed answer; doubled per
    /// attempt up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The service allows this many users per IP per `rate_window`; requests are paced to
    /// stay under it.
    pub rate_limit_users: u32,
    pub rate_window: Duration,
    /// First back-off after a 429 (or its Retry-After, if longer); doubled per 429 up to
    /// `rate_window`, after which the service's window has certainly moved on.
    pub rate_limited_backoff: Duration,
}

impl Default for RandomUserConfig {
    fn default() -> Self {
        Self {
            base_url: "https://randomuser.me/api/1.4/".into(),
            page_size: MAX_PAGE_SIZE,
            seed: None,
            nat: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_attempts: 6,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            rate_limit_users: 20_000,
            rate_window: Duration::from_secs(300),
            rate_limited_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid randomuser configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(
        "randomuser request GET {url} failed after {attempts} attempt(s) \
         (retries with back-off on 429, 5xx, network errors, truncated or malformed pages): {last}"
    )]
    Exhausted {
        url: String,
        attempts: u32,
        last: AttemptError,
    },
    #[error("randomuser request GET {url} was refused with HTTP {status} (not retried): {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
}

/// Why one attempt failed; all of these are retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    #[error("network error: {0}")]
    Network(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("rate limited (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("truncated page: {0}")]
    Truncated(String),
    #[error("malformed page (not randomuser JSON): {0}")]
    Malformed(String),
    #[error("the API answered with an error: {0}")]
    Api(String),
}

/// The results of one page.
#[derive(Debug)]
pub struct Page {
    /// Results that carry a `login.uuid`, in the order the API sent them.
    pub records: Vec<Record>,
    /// Results without a usable `login.uuid`: they cannot be keyed and are not forwarded.
    pub missing_key: u64,
    /// Attempts this page took (1 when the first one succeeded).
    pub attempts: u32,
}

/// The pages of one run of the source, in order, for `quiver produce` and `quiver batch`.
///
/// The API's pages depend on their size, so one size serves the whole run (callers drop
/// the surplus of the last page): the configured page size, or fewer for a run of fewer
/// users.
pub struct Pages {
    client: RandomUser,
    size: u32,
    next: u32,
}

/// A page that could not be fetched, named by its number and size.
#[derive(Debug, thiserror::Error)]
#[error("the randomuser source failed on page {page} of {size} users")]
pub struct PageError {
    pub page: u32,
    pub size: u32,
    #[source]
    pub source: SourceError,
}

impl Pages {
    /// From page 1, for a run of `users` users (`None`: no end).
    pub fn new(client: RandomUser, users: Option<u64>) -> Self {
        let size = match users {
            Some(n) => u64::from(client.page_size()).min(n.max(1)) as u32,
            None => client.page_size(),
        };
        Self {
            client,
            size,
            next: 1,
        }
    }

    /// The number the next page will have (1-based).
    pub fn next_number(&self) -> u32 {
        self.next
    }

    /// Fetches the next page, retrying as configured.
    pub async fn next(&mut self) -> Result<Page, PageError> {
        let page = self
            .client
            .fetch_page(self.next, self.size)
            .await
            .map_err(|source| PageError {
                page: self.next,
                size: self.size,
                source,
            })?;
        self.next += 1;
        Ok(page)
    }
}

pub struct RandomUser {
    http: reqwest::Client,
    cfg: RandomUserConfig,
    seed: String,
    /// Users requested per instant inside the current rate window.
    requested: Mutex<VecDeque<(Instant, u32)>>,
}

impl RandomUser {
    pub fn new(cfg: RandomUserConfig) -> Result<Self, SourceError> {
        if cfg.page_size == 0 || cfg.page_size > MAX_PAGE_SIZE {
            return Err(SourceError::Config(format!(
                "page size {} is outside 1..={MAX_PAGE_SIZE}",
                cfg.page_size
            )));
        }
        if cfg.max_attempts == 0 {
            return Err(SourceError::Config(
                "max attempts must be at least 1".into(),
            ));
        }
        Url::parse(&cfg.base_url)
            .map_err(|e| SourceError::Config(format!("base URL {:?}: {e}", cfg.base_url)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(concat!("quiver/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Client(error_chain(&e)))?;
        let seed = cfg
            .seed
            .clone()
            .unwrap_or_else(|| format!("quiver-{:016x}", crate::random_u64()));
        Ok(Self {
            http,
            cfg,
            seed,
            requested: Mutex::new(VecDeque::new()),
        })
    }

    /// The seed sent with every request (the configured one or the one picked at start).
    pub fn seed(&self) -> &str {
        &self.seed
    }

    pub fn page_size(&self) -> u32 {
        self.cfg.page_size
    }

    /// The URL of page `page` (1-based) with `results` users.
    pub fn page_url(&self, page: u32, results: u32) -> Url {
        let mut params = vec![
            ("results", results.to_string()),
            ("page", page.to_string()),
            ("seed", self.seed.clone()),
        ];
        if let Some(nat) = &self.cfg.nat {
            params.push(("nat", nat.clone()));
        }
        Url::parse_with_params(&self.cfg.base_url, &params)
            .expect("base URL was validated in RandomUser::new")
    }

    /// Fetches page `page` (1-based) of `results` users, retrying as configured.
    ///
    /// The API's pages depend on the page size, so callers must keep `results` constant
    /// across the pages of one run (and drop the surplus of the last page) to never see a
    /// user twice.
    pub async fn fetch_page(&self, page: u32, results: u32) -> Result<Page, SourceError> {
        let url = self.page_url(page, results);
        let mut rate_limited = 0u32;
        for attempt in 1..=self.cfg.max_attempts {
            self.pace(results).await;
            let error = match self.attempt(&url).await {
                Ok(Ok((records, missing_key))) => {
                    return Ok(Page {
                        records,
                        missing_key,
                        attempts: attempt,
                    });
                }
                Ok(Err(error)) => error,
                Err((status, body)) => {
                    return Err(SourceError::Rejected {
                        url: url.to_string(),
                        status,
                        body,
                    });
                }
            };
            if attempt == self.cfg.max_attempts {
                return Err(SourceError::Exhausted {
                    url: url.to_string(),
                    attempts: attempt,
                    last: error,
                });
            }
            let delay = match &error {
                AttemptError::RateLimited { retry_after } => {
                    rate_limited += 1;
                    let backoff = exponential(
                        self.cfg.rate_limited_backoff,
                        rate_limited,
                        self.cfg.rate_window,
                    );
                    backoff.max(retry_after.unwrap_or_default())
                }
                _ => jittered(exponential(
                    self.cfg.backoff_initial,
                    attempt,
                    self.cfg.backoff_max,
                )),
            };
            tracing::warn!(
                %url, attempt, max_attempts = self.cfg.max_attempts, %error,
                "randomuser attempt failed; retrying in {delay:?}"
            );
            tokio::time::sleep(delay).await;
        }
        unreachable!("the last attempt returns")
    }

    /// One request. The outer error is a refusal that must not be retried.
    async fn attempt(
        &self,
        url: &Url,
    ) -> Result<Result<(Vec<Record>, u64), AttemptError>, (u16, String)> {
        let response = match self.http.get(url.clone()).send().await {
            Ok(response) => response,
            // The URL is already in the final message; repeating it per cause is noise.
            Err(e) => return Ok(Err(AttemptError::Network(error_chain(&e.without_url())))),
        };
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Ok(Err(AttemptError::RateLimited { retry_after }));
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                return Ok(Err(AttemptError::Truncated(format!(
                    "body ended early: {}",
                    error_chain(&e.without_url())
                ))));
            }
        };
        if status.is_server_error() {
            return Ok(Err(AttemptError::Status {
                status: status.as_u16(),
                body: snippet(&body),
            }));
        }
        if !status.is_success() {
            return Err((status.as_u16(), snippet(&body)));
        }
        Ok(parse_page(&body))
    }

    /// Waits until requesting `results` more users keeps the last window under the limit.
    async fn pace(&self, results: u32) {
        let mut requested = self.requested.lock().await;
        loop {
            let now = Instant::now();
            while requested
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) >= self.cfg.rate_window)
            {
                requested.pop_front();
            }
            let in_window: u64 = requested.iter().map(|(_, n)| u64::from(*n)).sum();
            let fits = in_window + u64::from(results) <= u64::from(self.cfg.rate_limit_users);
            match requested.front() {
                Some((oldest, _)) if !fits => {
                    let wait = self.cfg.rate_window - now.duration_since(*oldest);
                    tracing::info!(
                        in_window,
                        limit = self.cfg.rate_limit_users,
                        "pacing randomuser requests to the service's rate limit; waiting {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => break,
            }
        }
        requested.push_back((Instant::now(), results));
    }
}

#[derive(Deserialize)]
struct PageBody<'a> {
    #[serde(borrow, default)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct KeyProbe<'a> {
    #[serde(borrow)]
    login: Option<LoginProbe<'a>>,
}

#[derive(Deserialize)]
struct LoginProbe<'a> {
    #[serde(borrow)]
    uuid: Option<Cow<'a, str>>,
}

/// Splits a page body into keyed records and counts the results without a key.
pub fn parse_page(body: &[u8]) -> Result<(Vec<Record>, u64), AttemptError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| AttemptError::Malformed(format!("not UTF-8 ({e}): {}", snippet(body))))?;
    let page: PageBody = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            AttemptError::Truncated(format!("{e} after {} bytes", body.len()))
        } else {
            AttemptError::Malformed(format!("{e}: {}", snippet(body)))
        }
    })?;
    if let Some(error) = page.error {
        return Err(AttemptError::Api(error));
    }
    let results = page
        .results
        .ok_or_else(|| AttemptError::Malformed(format!("no `results` array: {}", snippet(body))))?;
    let mut records = Vec::with_capacity(results.len());
    let mut missing_key = 0;
    for raw in results {
        let key = serde_json::from_str::<KeyProbe>(raw.get())
            .ok()
            .and_then(|probe| probe.login?.uuid)
            .filter(|uuid| !uuid.is_empty());
        match key {
            Some(key) => records.push(Record {
                key: key.into_owned(),
                value: compact_json(raw.get()).into_owned(),
            }),
            None => missing_key += 1,
        }
    }
    Ok((records, missing_key))
}

/// Removes whitespace outside strings and leaves every other byte as it was (key order,
/// number spelling, escapes), so the record stays exactly what the API sent.
pub fn compact_json(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    let is_ws = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    let mut in_string = false;
    let mut escaped = false;
    let mut out: Option<Vec<u8>> = None;
    for (i, &b) in bytes.iter().enumerate() {
        let keep = if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            true
        } else if b == b'"' {
            in_string = true;
            true
        } else {
            !is_ws(b)
        };
        match (&mut out, keep) {
            (Some(out), true) => out.push(b),
            (None, false) => out = Some(bytes[..i].to_vec()),
            _ => {}
        }
    }
    match out {
        // Only ASCII whitespace was removed, between UTF-8 sequences.
        Some(out) => Cow::Owned(String::from_utf8(out).expect("valid UTF-8 stays valid")),
        None => Cow::Borrowed(json),
    }
}

fn exponential(initial: Duration, attempt: u32, cap: Duration) -> Duration {
    initial
        .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
        .min(cap)
}

/// Half fixed, half random: spreads retries of many clients without ever retrying at once.
fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    let extra = half.as_nanos() as u64;
    half + Duration::from_nanos(if extra == 0 {
        0
    } else {
        crate::random_u64() % extra
    })
}

fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let more = if body.len() > MAX { "…" } else { "" };
    format!("{:?}{more} ({} bytes)", text, body.len())
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_removes_only_whitespace_outside_strings() {
        let pretty = "{ \"a\" : [1, 2.50e3],\n\t\"b\": \"x y\\\" z \\\\\", \"c\" :null }";
        assert_eq!(
            compact_json(pretty),
            "{\"a\":[1,2.50e3],\"b\":\"x y\\\" z \\\\\",\"c\":null}"
        );
        let compact = "{\"n\":\"Øystein  Ødegård\"}";
        assert!(matches!(compact_json(compact), Cow::Borrowed(s) if s == compact));
    }

    #[test]
    fn parse_page_keeps_raw_bytes_and_counts_missing_keys() {
        let body = br#"{"results":[
            {"login":{"uuid":"u-1"},"postcode":"0150","n":1.50},
            {"login":{"username":"no-uuid"}},
            {"login":{"uuid":""}},
            {"name":"no login"},
            {"login":{"uuid":"u-2"}}
        ],"info":{"seed":"s","results":5,"page":1,"version":"1.4"}}"#;
        let (records, missing) = parse_page(body).unwrap();
        assert_eq!(missing, 3);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, "u-1");
        assert_eq!(
            records[0].value,
            r#"{"login":{"uuid":"u-1"},"postcode":"0150","n":1.50}"#
        );
        assert_eq!(records[1].key, "u-2");
    }

    #[test]
    fn parse_page_classifies_bad_bodies() {
        assert!(matches!(
            parse_page(br#"{"results":[{"login":{"uu"#),
            Err(AttemptError::Truncated(_))
        ));
        assert!(matches!(
            parse_page(b"<html>Bad gateway</html>"),
            Err(AttemptError::Malformed(_))
        ));
        assert!(matches!(
            parse_page(br#"{"info":{}}"#),
            Err(AttemptError::Malformed(_))
        ));
        assert!(matches!(
            parse_page(br#"{"error":"Uh oh, something has gone wrong."}"#),
            Err(AttemptError::Api(m)) if m.contains("Uh oh")
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_in_range() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        assert_eq!(exponential(base, 1, cap), base);
        assert_eq!(exponential(base, 3, cap), Duration::from_millis(400));
        assert_eq!(exponential(base, 30, cap), cap);
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(400));
            assert!(d >= Duration::from_millis(200) && d < Duration::from_millis(400));
        }
    }

    #[test]
    fn page_url_carries_results_page_seed_and_nat() {
        let client = RandomUser::new(RandomUserConfig {
            base_url: "http://127.0.0.1:1/api/1.4/".into(),
            seed: Some("abc".into()),
            nat: Some("gb,no".into()),
            ..RandomUserConfig::default()
        })
        .unwrap();
        assert_eq!(
            client.page_url(3, 500).as_str(),
            "http://127.0.0.1:1/api/1.4/?results=500&page=3&seed=abc&nat=gb%2Cno"
        );
    }

    #[test]
    fn without_a_seed_the_client_picks_one_and_keeps_it_for_every_page() {
        let client = RandomUser::new(RandomUserConfig {
            base_url: "http://127.0.0.1:1/api/1.4/".into(),
            ..RandomUserConfig::default()
        })
        .unwrap();
        let seed = client.seed().to_string();
        assert!(seed.starts_with("quiver-"), "{seed}");
        for page in [1, 2] {
            let url = client.page_url(page, 10);
            assert!(url.as_str().contains(&format!("seed={seed}")), "{url}");
        }
    }

    #[test]
    fn config_is_validated() {
        let bad_size = RandomUserConfig {
            page_size: MAX_PAGE_SIZE + 1,
            ..RandomUserConfig::default()
        };
        assert!(matches!(
            RandomUser::new(bad_size),
            Err(SourceError::Config(_))
        ));
        let bad_url = RandomUserConfig {
            base_url: "not a url".into(),
            ..RandomUserConfig::default()
        };
        assert!(matches!(
            RandomUser::new(bad_url),
            Err(SourceError::Config(_))
        ));
    }
}
