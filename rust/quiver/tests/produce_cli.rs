//! `quiver produce` as a user runs it. Tests marked ignored need a broker:
//! `QUIVER_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quiver_source::Record;
use quiver_source::synthetic::{self, Synthetic};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

fn quiver(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    command.args(args).env("RUST_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("QUIVER_") {
            command.env_remove(k);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_unknown_flag_is_refused_with_a_hint() {
    let out = quiver(&["produce", "--sauce", "synthetic"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--sauce") && err.contains("--source"), "{err}");
}

#[test]
fn a_broker_that_is_down_is_named_in_the_error() {
    let out = quiver(
        &[
            "produce",
            "--source",
            "synthetic",
            "--count",
            "5",
            "--bootstrap-servers",
            "127.0.0.1:9",
            "--connect-timeout",
            "1s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach Kafka at 127.0.0.1:9"), "{err}");
}

#[test]
fn no_amount_is_an_error_that_says_what_to_add() {
    let out = quiver(&["produce", "--source", "synthetic"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--count N or --duration D"));
}

#[test]
fn settings_layer_flags_over_environment_over_config_file() {
    let path = std::env::temp_dir().join(format!("quiver-cli-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[produce]\nsource = \"synthetic\"\ncount = 7\ntopic = \"file-topic\"\n\
         partitions = 9\nlinger-ms = 3\nseed = \"file-seed\"\n",
    )
    .unwrap();
    let out = quiver(
        &[
            "produce",
            "--config",
            path.to_str().unwrap(),
            "--print-config",
            "--partitions",
            "2",
        ],
        &[
            ("QUIVER_TOPIC", "env-topic"),
            ("QUIVER_PARTITIONS", "4"),
            ("QUIVER_BOOTSTRAP_SERVERS", "env-host:1234"),
        ],
    );
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for line in [
        "source = \"synthetic\"",
        "count = 7",
        "topic = \"env-topic\"",
        "partitions = 2",
        "linger-ms = 3",
        "seed = \"file-seed\"",
        "bootstrap-servers = \"env-host:1234\"",
        "compression = \"lz4\"",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} not in\n{printed}"
        );
    }
}

fn bootstrap() -> String {
    std::env::var("QUIVER_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn unique_topic(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("quiver-cli-{name}-{}-{nanos}", std::process::id())
}

/// Every message of `topic`: key, value and source header, in no particular order.
fn consume_all(topic: &str, expected: usize) -> Vec<(String, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("{topic}-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Reads on for a moment after the expected count, so that extra messages would show.
    let mut quiet_until = None;
    while Instant::now() < deadline {
        if out.len() >= expected {
            let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_secs(2));
            if Instant::now() >= until {
                break;
            }
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let header = message
                .headers()
                .unwrap()
                .iter()
                .find(|h| h.key == "source")
                .unwrap();
            out.push((
                text(message.key().unwrap()),
                text(message.payload().unwrap()),
                text(header.value.unwrap()),
            ));
        }
    }
    out
}

fn assert_exactly(consumed: &[(String, String, String)], expected: &[Record], source: &str) {
    assert_eq!(
        consumed.len(),
        expected.len(),
        "N produced must be exactly N consumed"
    );
    let by_key: HashMap<&str, &str> = expected
        .iter()
        .map(|r| (r.key.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(by_key.len(), expected.len());
    let mut seen = std::collections::HashSet::new();
    for (key, value, header) in consumed {
        assert_eq!(by_key.get(key.as_str()), Some(&value.as_str()), "key {key}");
        assert_eq!(header, source);
        assert!(seen.insert(key.clone()), "{key} twice");
    }
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn synthetic_run_delivers_exactly_the_seeded_records() {
    let topic = unique_topic("synthetic");
    let out = quiver(
        &[
            "produce",
            "--source",
            "synthetic",
            "--count",
            "3000",
            "--seed",
            "11",
            "--topic",
            &topic,
            "--bootstrap-servers",
            &bootstrap(),
            "--compression",
            "zstd",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("delivered   3000   failed 0"), "{summary}");
    let expected: Vec<Record> = Synthetic::new(11).take(3000).collect();
    assert_exactly(&consume_all(&topic, 3000), &expected, "synthetic");
}

/// A randomuser look-alike on a std thread: synthetic pages, one HTTP 500 first.
fn fake_randomuser() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/1.4/", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split_whitespace().nth(1).unwrap().to_string();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push(target.clone());
                seen.len() == 1
            };
            let (status, body) = if first {
                (
                    "500 Internal Server Error",
                    "{\"error\":\"busy\"}".to_string(),
                )
            } else {
                ("200 OK", page(&target))
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, requests)
}

fn query(target: &str, name: &str) -> u64 {
    target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap()
        .parse()
        .unwrap()
}

fn page(target: &str) -> String {
    let (page, results) = (query(target, "page"), query(target, "results"));
    let values: Vec<String> = (0..results)
        .map(|i| synthetic::record(query(target, "seed"), (page - 1) * results + i).value)
        .collect();
    format!(
        "{{\"results\":[{}],\"info\":{{\"page\":{page}}}}}",
        values.join(",")
    )
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn randomuser_run_pages_retries_and_delivers_each_user_once() {
    let (url, requests) = fake_randomuser();
    let topic = unique_topic("randomuser");
    let out = quiver(
        &[
            "produce",
            "--source",
            "randomuser",
            "--api-url",
            &url,
            "--count",
            "120",
            "--page-size",
            "50",
            "--seed",
            "77",
            "--topic",
            &topic,
            "--bootstrap-servers",
            &bootstrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("3 pages, 1 retried attempts"), "{summary}");
    // Pages keep one size; the surplus of the last one is not sent.
    let expected: Vec<Record> = (0..120).map(|i| synthetic::record(77, i)).collect();
    assert_exactly(&consume_all(&topic, 120), &expected, "randomuser");
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| query(r, "results") == 50));
}

#[test]
#[ignore = "needs the local stack: scripts/stack up"]
fn undelivered_records_make_the_run_fail_with_the_reason() {
    let topic = unique_topic("refused");
    // The broker takes no batch above 1000 bytes on this topic: every record is refused.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let new_topic =
        NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "1000");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in runtime
        .block_on(admin.create_topics([&new_topic], &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap();
    }
    let out = quiver(
        &[
            "produce",
            "--source",
            "synthetic",
            "--count",
            "200",
            "--topic",
            &topic,
            "--bootstrap-servers",
            &bootstrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("were not delivered") && err.contains(&topic),
        "{err}"
    );
    let summary = text(&out.stdout);
    assert!(summary.contains("delivered   0"), "{summary}");
}
