//! The NATS JetStream source against a real NATS server on
//! 127.0.0.1:4222 (`scripts/test` starts one): events published to a
//! stream are counted exactly once, across a `kill -9` of ripcord in the
//! middle of consuming them; bad lines are refused, counted and acked.
//!
//! Each test makes its own stream (a unique name and subject) and deletes
//! it at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::recovery::Sides;
use crate::support::{
    Serve, client, event, get_json, quiet_policy, rfc3339_now, set_up_release, until_ready,
};

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");
const NATS: &str = "nats://127.0.0.1:4222";

/// A stream of this test's own, deleted when dropped.
struct TestStream {
    js: jetstream::Context,
    name: String,
    subject: String,
}

impl TestStream {
    async fn new(tag: &str) -> TestStream {
        let client = async_nats::connect(NATS).await.unwrap_or_else(|e| {
            panic!(
                "no NATS server on {NATS} ({e}): scripts/test starts one, or run \
                 nats-server -a 127.0.0.1 -p 4222 -js"
            )
        });
        let js = jetstream::new(client);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("RC_{tag}_{}_{nanos}", std::process::id());
        let subject = format!("rctest.{name}.events");
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::Memory,
            // JetStream's own de-duplication by `Nats-Msg-Id` is kept
            // short, so that a test can publish a message again and see
            // ripcord's idempotency keys catch it.
            duplicate_window: Duration::from_millis(100),
            ..Default::default()
        })
        .await
        .unwrap();
        TestStream { js, name, subject }
    }

    /// Publishes one message, with a `Nats-Msg-Id` when `id` is given,
    /// and waits for JetStream to store it; whether it was stored (not a
    /// duplicate within the stream's window).
    async fn publish(&self, body: String, id: Option<String>) -> bool {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
        !ack.duplicate
    }

    /// Publishes a message that JetStream stores again although its
    /// `Nats-Msg-Id` was seen: after the duplicate window.
    async fn publish_again(&self, body: &str, id: &str) {
        let started = Instant::now();
        while !self.publish(body.to_string(), Some(id.to_string())).await {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still a duplicate"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until ripcord's consumer has every message acknowledged
    /// (nothing pending, nothing awaiting an ack).
    async fn until_all_acked(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let stream = self.js.get_stream(&self.name).await.unwrap();
            let consumer: Result<jetstream::consumer::PullConsumer, _> =
                stream.get_consumer("ripcord").await;
            if let Ok(mut consumer) = consumer {
                let info = consumer.info().await.unwrap();
                if info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.delivered.stream_sequence > 0
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < within,
                "stream {}: not every message was acked within {within:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn flags(&self) -> Vec<String> {
        ["--nats", NATS, "--nats-stream", &self.name]
            .map(str::to_string)
            .to_vec()
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let (js, name) = (self.js.clone(), self.name.clone());
        // Best effort, from whatever runtime is still there.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = js.delete_stream(name).await;
            });
        }
    }
}

async fn serve(dir: &Path, stream: &TestStream) -> Serve {
    let flags = stream.flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Serve::start_with(Path::new(BIN), dir, &args, true)
        .await
        .unwrap();
    until_ready(&server, Duration::from_secs(10)).await.unwrap();
    server
}

/// `n` events of `service` as NDJSON, half on each version at random.
fn ndjson(rng: &mut StdRng, service: &str, n: usize) -> (String, Sides) {
    let ts = rfc3339_now();
    let mut body = String::with_capacity(n * 170);
    let mut sides = (0, 0);
    for _ in 0..n {
        let version = if rng.random_bool(0.5) {
            sides.1 += 1;
            "v2"
        } else {
            sides.0 += 1;
            "v1"
        };
        let unit = format!("u{}", rng.random_range(0..100_000u32));
        event(
            &mut body,
            &ts,
            service,
            version,
            &unit,
            rng.random_bool(0.01),
        );
        body.push('\n');
    }
    (body, sides)
}

/// Waits until `/metrics` has `line` (the source's task sets its metrics
/// once it runs, a moment after the server is ready).
async fn until_metric(c: &reqwest::Client, s: &Serve, line: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let text = c
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "no {line} within {within:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn counted(c: &reqwest::Client, s: &Serve, release: &str) -> Sides {
    let r = get_json(c, s, &format!("/v1/releases/{release}"))
        .await
        .unwrap();
    (
        r["events"]["baseline"].as_u64().unwrap(),
        r["events"]["candidate"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_consuming_a_stream_counts_every_event_exactly_once() {
    const MESSAGES: usize = 200;
    const PER_MESSAGE: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let stream = TestStream::new("kill").await;
    let c = client().unwrap();
    let mut rng = StdRng::seed_from_u64(0x4A75_0001);
    let mut server = serve(dir.path(), &stream).await;
    let release = set_up_release(&c, &server, "nats-svc", &quiet_policy("nats-svc"), None)
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    // Half the messages carry the producer's id, half are keyed by their
    // stream sequence.
    let mut published = (0, 0);
    for i in 0..MESSAGES {
        let (body, sides) = ndjson(&mut rng, "nats-svc", PER_MESSAGE);
        published.0 += sides.0;
        published.1 += sides.1;
        let msg_id = (i % 2 == 0).then(|| format!("batch-{i}"));
        assert!(stream.publish(body, msg_id).await);
    }
    let total = published.0 + published.1;
    // Killed as soon as some of the events are stored.
    let at_kill = loop {
        let (b, c2) = counted(&c, &server, &id).await;
        if b + c2 > 0 {
            server.kill9();
            break b + c2;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!("killed with {at_kill} of {total} events stored");
    let server = serve(dir.path(), &stream).await;
    // The messages the killed process had taken come again after the
    // consumer's ack wait.
    let ack_wait = ripcord_server::nats::ACK_WAIT;
    stream
        .until_all_acked(ack_wait + Duration::from_secs(8))
        .await;
    let stored = counted(&c, &server, &id).await;
    assert_eq!(
        stored, published,
        "every published event once: none lost, none counted twice"
    );
    until_metric(
        &c,
        &server,
        "ripcord_nats_connected 1",
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_bad_lines_keeps_its_good_events_and_is_acked_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let stream = TestStream::new("bad").await;
    let c = client().unwrap();
    let server = serve(dir.path(), &stream).await;
    let release = set_up_release(&c, &server, "nats-bad", &quiet_policy("nats-bad"), None)
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    let ts = rfc3339_now();
    let mut body = String::new();
    event(&mut body, &ts, "nats-bad", "v1", "u1", false);
    body.push_str("\n{\"ts\": not json\n");
    event(&mut body, &ts, "no-such-service", "v1", "u2", false);
    body.push('\n');
    body.push_str(&format!(
        "{{\"ts\":\"{ts}\",\"service\":\"nats-bad\",\"version\":\"v2\",\"unit\":\"u3\",\"values\":{{\"outputs\":1,\"moderation_fail\":NaN}}}}\n"
    ));
    event(&mut body, &ts, "nats-bad", "v2", "u4", false);
    body.push('\n');
    assert!(stream.publish(body, Some("bad-1".into())).await);
    stream.until_all_acked(Duration::from_secs(10)).await;
    assert_eq!(counted(&c, &server, &id).await, (1, 1), "the good lines");
    for line in [
        "ripcord_nats_rejected_total 3",
        "ripcord_nats_messages_total{result=\"rejected\"} 1",
        "ripcord_nats_connected 1",
    ] {
        until_metric(&c, &server, line, Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_seen_before_counts_once_and_reused_for_other_events_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stream = TestStream::new("dup").await;
    let c = client().unwrap();
    let server = serve(dir.path(), &stream).await;
    let release = set_up_release(&c, &server, "nats-dup", &quiet_policy("nats-dup"), None)
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    let mut rng = StdRng::seed_from_u64(0x4A75_0002);
    let (body, sides) = ndjson(&mut rng, "nats-dup", 50);
    assert!(stream.publish(body.clone(), Some("m-1".into())).await);
    stream.until_all_acked(Duration::from_secs(10)).await;
    assert_eq!(counted(&c, &server, &id).await, sides);
    // The same message stored twice by JetStream (as when a producer
    // retries after the duplicate window), which is also what a
    // redelivery looks like to ripcord: answered from the store.
    stream.publish_again(&body, "m-1").await;
    stream.until_all_acked(Duration::from_secs(10)).await;
    assert_eq!(counted(&c, &server, &id).await, sides, "counted once");
    // The id reused for other events: a producer's mistake, refused whole.
    let (other, _) = ndjson(&mut rng, "nats-dup", 10);
    stream.publish_again(&other, "m-1").await;
    stream.until_all_acked(Duration::from_secs(10)).await;
    assert_eq!(counted(&c, &server, &id).await, sides);
    let line = "ripcord_nats_messages_total{result=\"rejected\"} 1";
    until_metric(&c, &server, line, Duration::from_secs(5)).await;
    let line = "ripcord_nats_messages_total{result=\"ingested\"} 2";
    until_metric(&c, &server, line, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_nats_server_leaves_ripcord_serving_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let args = ["--nats", "nats://127.0.0.1:1", "--nats-stream", "NOWHERE"];
    let server = Serve::start_with(Path::new(BIN), dir.path(), &args, true)
        .await
        .unwrap();
    until_ready(&server, Duration::from_secs(10)).await.unwrap();
    let c = client().unwrap();
    until_metric(
        &c,
        &server,
        "ripcord_nats_connected 0",
        Duration::from_secs(5),
    )
    .await;
    let ready = c.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the HTTP API serves all the same");
}
