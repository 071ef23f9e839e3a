//! The randomuser client against a local HTTP server that serves randomuser-shaped pages
//! and, on cue, the failures the real service produces.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_source::Record;
use quiver_source::randomuser::{AttemptError, Pages, RandomUser, RandomUserConfig, SourceError};
use quiver_source::synthetic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug)]
enum Reply {
    Page,
    /// The page with whitespace inside the records, as a pretty-printing server would send.
    SpacedPage,
    /// The page with the first record's `login.uuid` renamed away.
    PageMissingFirstKey,
    Status(u16),
    RateLimited,
    /// Content-Length promises more than is sent before the connection closes.
    CutBody,
    /// A complete HTTP response whose JSON stops half-way.
    TruncatedJson,
    Malformed,
}

struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Answers with `script` in order, then with good pages.
    async fn start(script: &[Reply]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.lock().unwrap().push(target.clone());
                let reply = script.lock().unwrap().pop_front().unwrap_or(Reply::Page);
                let response = respond(reply, &target);
                // The client may hang up first (it reads no further on a cut body).
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            }
        });
        Server { addr, requests }
    }

    fn config(&self) -> RandomUserConfig {
        RandomUserConfig {
            base_url: format!("http://{}/api/1.4/", self.addr),
            seed: Some("test-seed".into()),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff_initial: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            rate_limited_backoff: Duration::from_millis(10),
            ..RandomUserConfig::default()
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn param<'a>(target: &'a str, name: &str) -> &'a str {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {target}"))
}

/// What the server sends for page `page` of `results`: synthetic records, so the test
/// knows them in advance.
fn expected_page(seed: &str, page: u64, results: u64) -> Vec<Record> {
    let seed = seed
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..results)
        .map(|i| synthetic::record(seed, (page - 1) * results + i))
        .collect()
}

fn respond(reply: Reply, target: &str) -> Vec<u8> {
    let page_body = || {
        let seed = param(target, "seed");
        let page: u64 = param(target, "page").parse().unwrap();
        let results: u64 = param(target, "results").parse().unwrap();
        let mut values: Vec<String> = expected_page(seed, page, results)
            .into_iter()
            .map(|r| r.value)
            .collect();
        match reply {
            Reply::SpacedPage => {
                for v in &mut values {
                    *v = v.replace("\",\"", "\",\n    \"").replace("{\"", "{ \"");
                }
            }
            Reply::PageMissingFirstKey => values[0] = values[0].replacen("\"uuid\"", "\"x\"", 1),
            _ => {}
        }
        format!(
            "{{\"results\":[\n  {}\n],\"info\":{{\"seed\":\"{seed}\",\"results\":{results},\"page\":{page},\"version\":\"1.4\"}}}}",
            values.join(",\n  ")
        )
    };
    let http = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    match reply {
        Reply::Page | Reply::SpacedPage | Reply::PageMissingFirstKey => {
            http("200 OK", "", &page_body())
        }
        Reply::Status(code) => http(&format!("{code} Failing"), "", "{\"error\":\"failing\"}"),
        Reply::RateLimited => http("429 Too Many Requests", "Retry-After: 0\r\n", ""),
        Reply::CutBody => {
            let body = page_body();
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() + 1000
            )
            .into_bytes();
            response.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
            response
        }
        Reply::TruncatedJson => {
            let body = page_body();
            let cut = body.len() / 2;
            let cut = (0..=cut).rev().find(|&i| body.is_char_boundary(i)).unwrap();
            http("200 OK", "", &body[..cut])
        }
        Reply::Malformed => http("200 OK", "", "<html><body>Bad gateway</body></html>"),
    }
}

#[tokio::test]
async fn retries_every_failure_kind_and_forwards_each_user_exactly_once() {
    let server = Server::start(&[
        Reply::RateLimited,
        Reply::Status(500),
        Reply::CutBody,
        Reply::TruncatedJson,
        Reply::Malformed,
        Reply::Status(503),
        Reply::Page,
        Reply::Status(502),
        Reply::Page,
    ])
    .await;
    let client = RandomUser::new(server.config()).unwrap();
    let first = client.fetch_page(1, 50).await.unwrap();
    let second = client.fetch_page(2, 50).await.unwrap();
    assert_eq!(first.attempts, 7);
    assert_eq!(second.attempts, 2);
    assert_eq!((first.missing_key, second.missing_key), (0, 0));

    let expected: Vec<Record> = [1, 2]
        .into_iter()
        .flat_map(|p| expected_page("test-seed", p, 50))
        .collect();
    let got: Vec<Record> = first.records.into_iter().chain(second.records).collect();
    assert_eq!(got, expected);
    let keys: HashSet<_> = got.iter().map(|r| &r.key).collect();
    assert_eq!(keys.len(), 100);

    let requests = server.requests();
    assert_eq!(requests.len(), 9);
    assert!(requests[..7].iter().all(|r| param(r, "page") == "1"));
    assert!(requests[7..].iter().all(|r| param(r, "page") == "2"));
    assert!(
        requests
            .iter()
            .all(|r| param(r, "results") == "50" && param(r, "seed") == "test-seed")
    );
}

#[tokio::test]
async fn whitespace_inside_records_is_removed_and_nothing_else_changes() {
    let server = Server::start(&[Reply::SpacedPage]).await;
    let client = RandomUser::new(server.config()).unwrap();
    let page = client.fetch_page(3, 20).await.unwrap();
    assert_eq!(page.records, expected_page("test-seed", 3, 20));
}

#[tokio::test]
async fn records_without_login_uuid_are_counted_and_not_forwarded() {
    let server = Server::start(&[Reply::PageMissingFirstKey]).await;
    let client = RandomUser::new(server.config()).unwrap();
    let page = client.fetch_page(1, 10).await.unwrap();
    assert_eq!(page.missing_key, 1);
    assert_eq!(page.records, expected_page("test-seed", 1, 10)[1..]);
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempts_with_a_clear_error() {
    let server = Server::start(&[Reply::Status(500); 10]).await;
    let client = RandomUser::new(RandomUserConfig {
        max_attempts: 3,
        ..server.config()
    })
    .unwrap();
    let err = client.fetch_page(1, 5).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Exhausted {
                attempts: 3,
                last: AttemptError::Status { status: 500, .. },
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&server.addr.to_string()), "{message}");
    assert!(message.contains("3 attempt(s)"), "{message}");
    assert!(message.contains("HTTP 500"), "{message}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn malformed_pages_that_never_recover_are_reported_as_malformed() {
    let server = Server::start(&[Reply::Malformed; 10]).await;
    let client = RandomUser::new(RandomUserConfig {
        max_attempts: 2,
        ..server.config()
    })
    .unwrap();
    let err = client.fetch_page(1, 5).await.unwrap_err();
    assert!(err.to_string().contains("Bad gateway"), "{err}");
    assert!(
        matches!(
            err,
            SourceError::Exhausted {
                last: AttemptError::Malformed(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = Server::start(&[Reply::Status(404)]).await;
    let client = RandomUser::new(server.config()).unwrap();
    let err = client.fetch_page(1, 5).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_unreachable_api_is_reported_with_its_url() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = RandomUser::new(RandomUserConfig {
        base_url: format!("http://{addr}/api/1.4/"),
        max_attempts: 2,
        backoff_initial: Duration::from_millis(1),
        ..RandomUserConfig::default()
    })
    .unwrap();
    let err = client.fetch_page(1, 5).await.unwrap_err();
    assert!(
        matches!(
            &err,
            SourceError::Exhausted {
                attempts: 2,
                last: AttemptError::Network(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn a_run_pages_in_order_with_one_size_and_names_the_page_that_failed() {
    // Page 3 fails for good (400 is not retried): the first two pages arrive, then an error
    // that says which page of which size.
    let server = Server::start(&[Reply::Page, Reply::Page, Reply::Status(400)]).await;
    let client = RandomUser::new(RandomUserConfig {
        page_size: 500,
        ..server.config()
    })
    .unwrap();
    // A run of 120 users asks for pages of 120, not of the configured 500.
    let mut pages = Pages::new(client, Some(120));
    for number in 1..=2 {
        assert_eq!(pages.next_number(), number);
        let page = pages.next().await.unwrap();
        assert_eq!(
            page.records,
            expected_page("test-seed", u64::from(number), 120)
        );
    }
    let error = pages.next().await.unwrap_err();
    assert_eq!((error.page, error.size), (3, 120));
    assert!(matches!(
        error.source,
        SourceError::Rejected { status: 400, .. }
    ));
    assert_eq!(
        error.to_string(),
        "the randomuser source failed on page 3 of 120 users"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for (i, target) in requests.iter().enumerate() {
        assert_eq!(param(target, "page"), (i + 1).to_string());
        assert_eq!(param(target, "results"), "120");
    }
}

#[tokio::test]
async fn a_run_without_an_end_asks_for_full_pages() {
    let server = Server::start(&[]).await;
    let client = RandomUser::new(RandomUserConfig {
        page_size: 50,
        ..server.config()
    })
    .unwrap();
    let mut pages = Pages::new(client, None);
    assert_eq!(pages.next().await.unwrap().records.len(), 50);
    assert_eq!(param(&server.requests()[0], "results"), "50");
}
