//! `POST /v1/events` against hostile senders: pre-aggregated buckets that
//! would blind or overflow the statistics, bodies of a million bad lines,
//! events from the future that would stall a service's clock, and retries
//! of a batch whose answer was lost.

use std::time::{Duration, Instant};

use crate::support::{Result, Running};
use ripcord_core::assign::is_candidate;
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use serde_json::{Value, json};

/// A server whose clock stands still until the test moves it.
async fn start_manual() -> Result<(Running, Clock)> {
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    let c = clock.clone();
    let running = crate::support::start_with(move |config| config.clock = c).await?;
    Ok((running, clock))
}

fn event(ts: Time, version: &str, unit: &str, values: Value) -> Value {
    json!({
        "ts": ts.to_rfc3339(), "service": "support-bot", "version": version,
        "unit": unit, "segment": {"locale": "en"}, "values": values,
    })
}

async fn post_raw(
    h: &Running,
    body: String,
    content_type: &str,
    key: Option<&str>,
) -> Result<(u16, String)> {
    let mut request = h
        .http
        .post(h.url("/v1/events"))
        .bearer_auth(&h.token)
        .header("content-type", content_type);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let r = request.body(body).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

fn rejected(body: &Value) -> Vec<(u64, String)> {
    body["rejected"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let index = r["index"].as_u64().unwrap_or(u64::MAX);
                    (index, r["error"].as_str().unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

const TOO_MANY_OUTPUTS: &str = "values.outputs: 1000000000000000 is more than the per-event limit of 10000 \
     (send a larger bucket as several events)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflated_buckets_are_refused_by_field_and_a_real_regression_still_breaches() -> Result {
    let (h, clock) = start_manual().await?;
    let id = h.release_at_30().await?;
    let units: Vec<String> = (0..200).map(|i| format!("u-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut second = 0;
    loop {
        clock.advance(Dur::from_secs(1));
        second += 1;
        let now = clock.now();
        // The attack of the issue, repeated every batch: a baseline bucket
        // of 1e15 outputs at a 10% failure rate and a candidate one without.
        let mut batch = vec![
            event(
                now,
                "v1",
                "attacker",
                json!({"outputs": 1e15, "moderation_fail": 1e14}),
            ),
            event(now, "v2", "attacker", json!({"outputs": 1e15})),
        ];
        // The real regression: the candidate fails 10% of outputs, the
        // baseline 1%.
        for (i, unit) in units.iter().enumerate() {
            let (version, flags) = if is_candidate("support-bot", unit, 0.3) {
                ("v2", 1)
            } else {
                ("v1", i32::from((i + second) % 10 == 0))
            };
            batch.push(event(
                now,
                version,
                unit,
                json!({"outputs": 10, "moderation_fail": flags, "latency_ms": 700}),
            ));
        }
        let (status, body) = h.post("/v1/events", &json!(batch)).await?;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], json!(units.len()), "{body}");
        assert_eq!(body["rejected_count"], json!(2), "{body}");
        assert_eq!(
            rejected(&body),
            vec![
                (0, TOO_MANY_OUTPUTS.to_string()),
                (1, TOO_MANY_OUTPUTS.to_string())
            ]
        );
        let release = h.get_json(&format!("/v1/releases/{id}")).await?;
        if release["state"] == json!("rolling_back") || release["state"] == json!("rolled_back") {
            // Within the minute the policy's `for` asks, and then some.
            assert!(second <= 120, "breached only after {second} s");
            break;
        }
        assert!(
            Instant::now() < deadline && second < 300,
            "the regression never breached: {release}"
        );
    }
    h.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_negative_and_excess_counts_are_refused_per_item() -> Result {
    let (h, clock) = start_manual().await?;
    assert_eq!(h.release_at_30().await?, "support-bot-1");
    let now = clock.now();
    let batch = json!([
        event(
            now,
            "v1",
            "u-1",
            json!({"outputs": 1, "moderation_fail": 0})
        ),
        event(now, "v1", "u-2", json!({"outputs": 1e308})),
        event(
            now,
            "v1",
            "u-3",
            json!({"outputs": 10, "moderation_fail": -1})
        ),
        event(
            now,
            "v1",
            "u-4",
            json!({"outputs": 10, "moderation_fail": 11})
        ),
        event(now, "v1", "u-5", json!({"outputs": 1, "latency_ms": -5})),
        event(now, "v1", "u-6", json!({"outputs": 1, "utility": 1e300})),
    ]);
    let (status, body) = h.post("/v1/events", &batch).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], json!(1));
    assert_eq!(body["rejected_count"], json!(5));
    let expected: Vec<(u64, String)> = vec![
        (1, "values.outputs: 1e+308 is more than the per-event limit of 10000 (send a larger bucket as several events)".into()),
        (2, "values.moderation_fail: -1 must not be negative".into()),
        (3, "values.moderation_fail: 11 flags cannot exceed values.outputs (10)".into()),
        (4, "values.latency_ms: -5 must not be negative".into()),
        (5, "values.utility: 1e+300 is outside the score's range [0, 1]".into()),
    ];
    assert_eq!(rejected(&body), expected);
    // Only the good one counts.
    let id = "support-bot-1";
    assert_eq!(
        events(&h, id).await?,
        json!({"baseline": 1, "candidate": 0})
    );
    h.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_invalid_lines_get_a_small_answer_with_an_exact_count() -> Result {
    let h = crate::support::start().await?;
    let body = "x\n".repeat(1_000_000);
    let (status, text) = post_raw(&h, body, "application/x-ndjson", None).await?;
    assert_eq!(status, 400);
    assert!(text.len() < 32 * 1024, "the answer is {} bytes", text.len());
    let answer: Value = serde_json::from_str(&text)?;
    assert_eq!(answer["rejected_count"], json!(1_000_000));
    let listed = answer["details"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 100);
    assert_eq!(answer["details"][0]["index"], json!(0));
    assert_eq!(answer["details"][99]["index"], json!(99));
    assert_eq!(
        answer["message"],
        json!(
            "no event was valid (1000000 refused, the first 100 listed in details); first problem: item 0: malformed JSON at column 1: expected value"
        )
    );
    // One line more than a body may hold is refused whole.
    let (status, text) =
        post_raw(&h, "x\n".repeat(1_000_001), "application/x-ndjson", None).await?;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("body: more than 1000000 items"), "{text}");
    h.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_the_future_cannot_make_honest_events_late() -> Result {
    let (h, clock) = start_manual().await?;
    let id = h.release_at_30().await?;
    let now = clock.now();
    let ahead = now + Dur::from_secs(4 * 60 + 55);
    let (status, body) = h
        .post(
            "/v1/events",
            &json!([event(ahead, "v1", "clock-skewed", json!({"outputs": 1}))]),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["details"][0]["error"],
        json!(format!(
            "ts: {} is more than 5s ahead of the server clock ({}); send events as they happen, from a clock in sync",
            ahead.to_rfc3339(),
            now.to_rfc3339()
        ))
    );
    // Honest events right after are accepted and counted.
    clock.advance(Dur::from_secs(1));
    let honest: Vec<Value> = (0..10)
        .map(|i| {
            let version = if i < 7 { "v1" } else { "v2" };
            event(
                clock.now(),
                version,
                &format!("u-{i}"),
                json!({"outputs": 1}),
            )
        })
        .collect();
    let (status, body) = h.post("/v1/events", &json!(honest)).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], json!(10), "{body}");
    let release = h.get_json(&format!("/v1/releases/{id}")).await?;
    assert_eq!(release["events"], json!({"baseline": 7, "candidate": 3}));
    h.server.shutdown().await?;
    Ok(())
}

/// The events a release has counted per side.
async fn events(h: &Running, id: &str) -> Result<Value> {
    Ok(h.get_json(&format!("/v1/releases/{id}")).await?["events"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_with_its_idempotency_key_is_counted_once() -> Result {
    let (h, clock) = start_manual().await?;
    let id = h.release_at_30().await?;
    let now = clock.now();
    let batch = json!([
        event(now, "v1", "u-1", json!({"outputs": 1})),
        event(now, "v2", "u-2", json!({"outputs": 1})),
        {"ts": "yesterday"},
        event(now, "v1", "u-3", json!({"outputs": 1})),
    ])
    .to_string();
    let (status, first) = post_raw(&h, batch.clone(), "application/json", Some("batch-1")).await?;
    assert_eq!(status, 202, "{first}");
    let answer: Value = serde_json::from_str(&first)?;
    assert_eq!(answer["accepted"], json!(3));
    assert_eq!(answer["rejected_count"], json!(1));
    let counted = json!({"baseline": 2, "candidate": 1});
    assert_eq!(events(&h, &id).await?, counted);
    // The retry answers the first answer and counts nothing again.
    let (status, again) = post_raw(&h, batch.clone(), "application/json", Some("batch-1")).await?;
    assert_eq!((status, &again), (202, &first));
    assert_eq!(events(&h, &id).await?, counted);
    // Also after a restart: the key was stored with the events.
    let h = h.restart().await?;
    let (status, again) = post_raw(&h, batch.clone(), "application/json", Some("batch-1")).await?;
    assert_eq!((status, &again), (202, &first));
    assert_eq!(events(&h, &id).await?, counted);
    // Another body under the same key is a mistake, not a retry.
    let other = json!([event(now, "v1", "u-9", json!({"outputs": 1}))]).to_string();
    let (status, body) = post_raw(&h, other, "application/json", Some("batch-1")).await?;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("Idempotency-Key: already used for a different body"),
        "{body}"
    );
    // Without a key, the same batch is new events.
    let (status, _) = post_raw(&h, batch, "application/json", None).await?;
    assert_eq!(status, 202);
    assert_eq!(
        events(&h, &id).await?,
        json!({"baseline": 4, "candidate": 2})
    );
    h.server.shutdown().await?;
    Ok(())
}
