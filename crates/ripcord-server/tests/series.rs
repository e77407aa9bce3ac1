//! Series: a running release's criteria recorded at the cadence of the
//! server's clock (manual here, ticked by hand), a last point when it
//! settles, none again by a restart, at most the bound per release, and
//! `GET /v1/releases/{id}/series` with its errors.

use std::time::Duration;

use crate::support::{Result, Running, request, start_with};
use ripcord_core::engine::Verdict;
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use ripcord_server::hub::series::SeriesOptions;
use serde_json::{Value, json};

/// A server on a manual clock (never ticked by itself) with a release at
/// 30% started at the clock's whole second.
async fn started(series: SeriesOptions) -> Result<(Running, Clock, String)> {
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    let manual = clock.clone();
    let run = start_with(move |c| {
        c.clock = manual;
        c.tick = Duration::from_secs(3600);
        c.series = series;
    })
    .await?;
    let id = run.release_at_30().await?;
    Ok((run, clock, id))
}

async fn tick(run: &Running, clock: &Clock, by: Dur) {
    clock.advance(by);
    run.server.app.hub.tick_all().await;
}

/// 20 candidate and 40 baseline outputs now, none flagged, 700 ms each.
async fn traffic(run: &Running, clock: &Clock) -> Result {
    let ts = clock.now().to_rfc3339();
    let events: Vec<Value> = (0..60)
        .map(|i| {
            json!({"ts": ts, "service": "support-bot",
                   "version": if i % 3 == 0 { "v2" } else { "v1" },
                   "unit": format!("u-{i}"),
                   "values": {"outputs": 1, "moderation_fail": 0, "latency_ms": 700}})
        })
        .collect();
    let (status, body) = run.post("/v1/events", &Value::Array(events)).await?;
    assert_eq!((status, &body["accepted"]), (202, &json!(60)), "{body}");
    Ok(())
}

async fn series(run: &Running, id: &str, query: &str) -> Result<Value> {
    run.get_json(&format!("/v1/releases/{id}/series{query}"))
        .await
}

fn ats(series: &Value) -> Vec<String> {
    series["points"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| p["at"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn at(t0: Time, secs: i64) -> String {
    (t0 + Dur::from_secs(secs)).to_rfc3339()
}

/// One criterion of a point, by name.
fn criterion<'a>(point: &'a Value, name: &str) -> &'a Value {
    point["criteria"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["criterion"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_follow_the_cadence_and_end_at_the_settling_decision() -> Result {
    let (run, clock, id) = started(SeriesOptions::default()).await?;
    let t0 = clock.now();
    // The first tick records the release's start; then one a minute.
    tick(&run, &clock, Dur::ZERO).await;
    tick(&run, &clock, Dur::from_secs(30)).await;
    traffic(&run, &clock).await?;
    tick(&run, &clock, Dur::from_secs(30)).await;
    let got = series(&run, &id, "").await?;
    let doc = crate::openapi::document();
    let path = "/v1/releases/{id}/series";
    crate::openapi::check(&doc, path, "get", reqwest::StatusCode::OK, &got);
    assert_eq!(
        (&got["release"], &got["every_ms"]),
        (&json!(id), &json!(60_000))
    );
    assert_eq!(ats(&got), [at(t0, 0), at(t0, 60)]);
    // At the start nothing has been seen.
    let first = &got["points"][0];
    let verdicts: Vec<&Value> = first["criteria"]
        .as_array()
        .map(|c| c.iter().map(|c| &c["verdict"]).collect())
        .unwrap_or_default();
    assert!(verdicts.iter().all(|v| **v == "no_data"), "{first}");
    // A minute in: the engine's figures for the 60 outputs.
    let second = &got["points"][1];
    let moderation = criterion(second, "moderation_rel");
    let expected = json!({
        "criterion": "moderation_rel", "signal": "moderation_fail", "verdict": "ok",
        "estimate": null, "interval": null, "window_estimate": null,
        "candidate_rate": 0.0, "baseline_rate": 0.0, "candidate_n": 20.0, "baseline_n": 40.0,
        "statistic": moderation["statistic"], "threshold": 60.0, "limit": 1.2,
        "bound": "candidate ≤ 1.2 × baseline"
    });
    assert_eq!(moderation, &expected);
    // No evidence yet: the first epoch's e-value of 1 at its weight 6/π²,
    // against 1/α with α = 5% over the policy's 3 rollback criteria.
    let statistic = moderation["statistic"].as_f64().unwrap_or(f64::NAN);
    assert!((statistic - 6.0 / std::f64::consts::PI.powi(2)).abs() < 1e-12);
    let latency = criterion(second, "latency_p95");
    assert_eq!(
        (&latency["verdict"], &latency["limit"]),
        (&json!("ok"), &json!(2500.0))
    );
    assert_eq!(
        (&latency["candidate_n"], &latency["baseline_n"]),
        (&json!(20.0), &Value::Null)
    );
    // No event is German, nor carries a utility score: no data, and the
    // interval's edge a score test has not got yet is null.
    let german = criterion(second, "moderation_de");
    assert_eq!(
        (&german["verdict"], &german["candidate_n"]),
        (&json!("no_data"), &json!(0.0))
    );
    let floor = criterion(second, "utility_floor");
    assert_eq!(
        (&floor["verdict"], &floor["statistic"]),
        (&json!("no_data"), &Value::Null)
    );
    // A score's drop is a negative limit against candidate − baseline.
    assert_eq!(criterion(second, "utility_drop")["limit"], -0.03);
    // The live readings are the engine's, in the points' order.
    let (live_id, readings) = run
        .server
        .app
        .hub
        .readings("support-bot")
        .await
        .ok_or("none")?;
    assert_eq!(live_id, id);
    let names: Vec<&str> = readings
        .iter()
        .map(|r| r.evidence.criterion.as_str())
        .collect();
    let stored: Vec<&str> = second["criteria"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["criterion"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, stored);
    assert!(readings.iter().any(|r| r.verdict == Verdict::Ok));
    assert_eq!(run.server.app.hub.readings("nobody").await, None);
    // Paging: `limit` and `from`.
    assert_eq!(ats(&series(&run, &id, "?limit=1").await?), [at(t0, 0)]);
    let from = (t0 + Dur(1)).to_rfc3339();
    assert_eq!(
        ats(&series(&run, &id, &format!("?from={from}")).await?),
        [at(t0, 60)]
    );

    // Rolled back by hand: two stages of 2 minutes. The last point is the
    // instant it settled, and no point follows.
    let (status, body) = run
        .post(
            &format!("/v1/releases/{id}/actions"),
            &json!({"action": "rollback"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let mut settled = None;
    for _ in 0..60 {
        tick(&run, &clock, Dur::from_secs(10)).await;
        let release = run.get_json(&format!("/v1/releases/{id}")).await?;
        if release["state"] == "rolled_back" {
            settled = release["updated_at"].as_str().map(str::to_string);
            break;
        }
    }
    let settled = settled.ok_or("not rolled back within 10 minutes")?;
    tick(&run, &clock, Dur::from_secs(600)).await;
    let got = series(&run, &id, "").await?;
    let all = ats(&got);
    assert_eq!(all.last(), Some(&settled), "{all:?}");
    // Between: one a minute of the release's grid, then the settling one.
    let expected: Vec<String> = (0..all.len() as i64 - 1).map(|m| at(t0, 60 * m)).collect();
    assert_eq!(all[..all.len() - 1], expected[..]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_records_no_point_again_and_keeps_the_cadence() -> Result {
    let (run, clock, id) = started(SeriesOptions::default()).await?;
    let t0 = clock.now();
    tick(&run, &clock, Dur::ZERO).await;
    traffic(&run, &clock).await?;
    tick(&run, &clock, Dur::from_secs(60)).await;
    let before = series(&run, &id, "").await?;
    assert_eq!(ats(&before), [at(t0, 0), at(t0, 60)]);
    let run = run.restart().await?;
    // Recovery replays the journal and records nothing.
    assert_eq!(series(&run, &id, "").await?, before);
    // The next point is the grid's next instant, not the first tick's.
    tick(&run, &clock, Dur::from_secs(30)).await;
    assert_eq!(ats(&series(&run, &id, "").await?).len(), 2);
    tick(&run, &clock, Dur::from_secs(30)).await;
    assert_eq!(
        ats(&series(&run, &id, "").await?),
        [at(t0, 0), at(t0, 60), at(t0, 120)]
    );
    Ok(())
}

/// With a point a second and at most 8, a 40-second release keeps 8 or
/// fewer at every moment, from its start to its newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_release_keeps_its_bound_and_its_whole_span() -> Result {
    let options = SeriesOptions {
        every: Dur::from_secs(1),
        max: 8,
    };
    let (run, clock, id) = started(options).await?;
    let t0 = clock.now();
    tick(&run, &clock, Dur::ZERO).await;
    for _ in 0..40 {
        tick(&run, &clock, Dur::from_secs(1)).await;
        let points = ats(&series(&run, &id, "").await?);
        assert!(points.len() <= 8, "{points:?}");
        assert_eq!(points.first(), Some(&at(t0, 0)));
    }
    let got = series(&run, &id, "").await?;
    // Each time the release outgrew 8 points at its cadence (at 8, 16 and
    // 32 s) the cadence doubled and every other point went: at 40 s it is
    // a point each 8 s from the start, as if recorded so all along.
    assert_eq!(got["every_ms"], 8_000);
    let secs: Vec<i64> = got["points"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p["at"].as_str().and_then(Time::parse_rfc3339))
                .map(|t| (t - t0).0 / 1000)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(secs, [0, 8, 16, 24, 32, 40]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_route_refuses_what_it_cannot_answer() -> Result {
    let (run, _clock, id) = started(SeriesOptions::default()).await?;
    let get = |path: String, token: String| {
        let (http, url) = (run.http.clone(), run.url(&path));
        async move { request(&http, reqwest::Method::GET, &url, &token, None).await }
    };
    let admin = run.token.clone();
    let (status, body) = get("/v1/releases/nope-1/series".into(), admin.clone()).await?;
    assert_eq!(status, 404, "{body}");
    let cases = [
        (
            "?from=yesterday",
            "from: \"yesterday\" is not an RFC 3339 instant",
        ),
        ("?limit=0", "limit: must be between 1 and 10000, got 0"),
        (
            "?limit=10001",
            "limit: must be between 1 and 10000, got 10001",
        ),
    ];
    for (query, message) in cases {
        let (status, body) = get(format!("/v1/releases/{id}/series{query}"), admin.clone()).await?;
        let body: Value = serde_json::from_str(&body)?;
        assert_eq!((status, &body["message"]), (400, &json!(message)), "{body}");
    }
    let (status, made) = run
        .post(
            "/v1/tokens",
            &json!({"name": "elsewhere", "role": "viewer", "services": ["other-bot"]}),
        )
        .await?;
    assert_eq!(status, 201, "{made}");
    let scoped = made["token"].as_str().unwrap_or_default().to_string();
    let (status, body) = get(format!("/v1/releases/{id}/series"), scoped).await?;
    assert_eq!(status, 403, "{body}");
    Ok(())
}
