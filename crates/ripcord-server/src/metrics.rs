//! Prometheus metrics, served on our own `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ripcord_core::Decision;
use ripcord_core::engine::Phase;
use ripcord_core::engine::Rejection;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("ripcord_evaluation_seconds".into()),
                    &buckets,
                )
                .ok()?
                .install_recorder()
                .ok()
                .inspect(|_| describe())
        })
        .as_ref()
}

/// HELP text for every metric (`promtool check metrics` wants one per
/// family); a metric added without a line here fails the test that runs
/// promtool on `/metrics`.
fn describe() {
    describe_counter!(
        "ripcord_events_accepted_total",
        "Events accepted by POST /v1/events and the NATS source (durable when answered)."
    );
    describe_counter!(
        "ripcord_events_rejected_total",
        "Events refused by POST /v1/events (listed per item in the answer) and the NATS source."
    );
    describe_counter!(
        "ripcord_events_ignored_total",
        "Accepted events the engine did not count, by reason."
    );
    describe_counter!(
        "ripcord_retention_deleted_total",
        "Rows retention deleted, by class (raw_events, decisions, evidence, audit)."
    );
    describe_counter!(
        "ripcord_incidents_opened_total",
        "Incidents opened, by kind (real or drill) and severity."
    );
    describe_counter!(
        "ripcord_incident_escalations_total",
        "Incident escalations (a level paged because nobody acknowledged), by kind."
    );
    describe_histogram!(
        "ripcord_evaluation_seconds",
        Unit::Seconds,
        "Time the engine took to evaluate one service's part of an ingest request."
    );
    describe_counter!(
        "ripcord_drill_decisions_total",
        "Decisions on drill releases, by kind and action (kept out of ripcord_decisions_total)."
    );
    describe_counter!(
        "ripcord_drill_events_total",
        "Events drills' simulated users sent (kept out of ripcord_events_accepted_total)."
    );
    describe_counter!(
        "ripcord_decisions_total",
        "Engine decisions, by kind and action."
    );
    describe_gauge!(
        "ripcord_release_state",
        "1 for the state a service's current release is in, 0 for the others."
    );
    describe_gauge!(
        "ripcord_candidate_share",
        "Share of units assigned to the candidate of a service's current release."
    );
    describe_counter!(
        "ripcord_webhook_deliveries_total",
        "Outbox delivery attempts, by result."
    );
    describe_gauge!(
        "ripcord_webhook_outbox_pending",
        "Outbox entries not yet delivered, as of the last scrape."
    );
    describe_counter!(
        "ripcord_http_responses_total",
        "HTTP responses, by status class."
    );
    describe_gauge!(
        "ripcord_nats_connected",
        "1 while the NATS JetStream source is connected to its server, else 0."
    );
    describe_counter!(
        "ripcord_nats_messages_total",
        "NATS messages handled, by result: ingested, rejected (acked with refused lines), retried (nak'd: the store was unavailable)."
    );
    describe_counter!(
        "ripcord_nats_rejected_total",
        "Lines of NATS messages refused (a message refused whole counts one); the messages are acked."
    );
    describe_counter!(
        "ripcord_prometheus_steps_total",
        "Steps of a service's Prometheus source, by result: ok (read and ingested), failed (Prometheus unreachable or refusing, or the store unavailable; counted again by the next step)."
    );
    describe_counter!(
        "ripcord_prometheus_no_data_total",
        "Steps at which a release version had no new sample in any of its service's Prometheus counters (no event: no data, never zero)."
    );
    describe_counter!(
        "ripcord_prometheus_resets_total",
        "Counter resets seen by a service's Prometheus source (a value below the last one: the new value counts as the increase)."
    );
}

pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// `GET /metrics`'s answer: the exposition text with its content type (the
/// leader's and a follower's alike).
pub fn exposition() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        render(),
    )
        .into_response()
}

pub fn ingested(accepted: usize, rejected: usize) {
    counter!("ripcord_events_accepted_total").increment(accepted as u64);
    counter!("ripcord_events_rejected_total").increment(rejected as u64);
}

pub fn ignored(why: Rejection) {
    let reason = match why {
        Rejection::OtherService => "other_service",
        Rejection::NoRelease => "no_release",
        Rejection::UnknownVersion => "unknown_version",
        Rejection::TooLate => "too_late",
    };
    counter!("ripcord_events_ignored_total", "reason" => reason).increment(1);
}

/// An incident opened, by kind: dashboards and alerts on real incidents
/// filter `kind="real"`, so drills stay out of the real figures.
pub fn incident_opened(kind: &str, severity: &str) {
    counter!("ripcord_incidents_opened_total", "kind" => kind.to_string(), "severity" => severity.to_string())
        .increment(1);
}

/// An incident escalated one level (or re-paged the last level).
pub fn incident_escalated(kind: &str) {
    counter!("ripcord_incident_escalations_total", "kind" => kind.to_string()).increment(1);
}

/// Rows retention deleted, by class.
pub fn retention_deleted(class: &'static str, n: u64) {
    counter!("ripcord_retention_deleted_total", "class" => class).increment(n);
}

pub fn evaluation(took: Duration) {
    histogram!("ripcord_evaluation_seconds").record(took.as_secs_f64());
}

/// A decision; a drill release's are counted apart, so that alerts on
/// real rollbacks never see a rehearsal.
pub fn decision(d: &Decision, drill: bool) {
    let action = d.action.map_or("", |a| a.as_str());
    let name = if drill {
        "ripcord_drill_decisions_total"
    } else {
        "ripcord_decisions_total"
    };
    counter!(name, "kind" => d.kind.as_str(), "action" => action).increment(1);
}

/// Events a drill's simulated users sent.
pub fn drill_events(accepted: usize) {
    counter!("ripcord_drill_events_total").increment(accepted as u64);
}

/// A service's real release state and candidate share; `None`: no release
/// yet. A drill release leaves them as the last real release left them.
pub fn release_state(service: &str, release: Option<(Phase, f64)>, drill: bool) {
    let Some((current, share)) = release.filter(|_| !drill) else {
        return;
    };
    for phase in Phase::ALL {
        let on = if current == phase { 1.0 } else { 0.0 };
        gauge!("ripcord_release_state", "service" => service.to_string(), "state" => phase.as_str())
            .set(on);
    }
    gauge!("ripcord_candidate_share", "service" => service.to_string()).set(share);
}

pub fn webhook(result: &'static str) {
    counter!("ripcord_webhook_deliveries_total", "result" => result).increment(1);
}

pub fn http_request(status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("ripcord_http_responses_total", "class" => class).increment(1);
}

/// Whether the NATS source is connected.
pub fn nats_connected(on: bool) {
    gauge!("ripcord_nats_connected").set(if on { 1.0 } else { 0.0 });
}

/// A NATS message handled: `ingested`, `rejected` or `retried`.
pub fn nats_message(result: &'static str) {
    counter!("ripcord_nats_messages_total", "result" => result).increment(1);
}

/// Lines of NATS messages refused.
pub fn nats_rejected(lines: u64) {
    counter!("ripcord_nats_rejected_total").increment(lines);
}

/// A step of a service's Prometheus source: `ok` or `failed`.
pub fn prometheus_step(service: &str, result: &'static str) {
    counter!("ripcord_prometheus_steps_total", "service" => service.to_string(), "result" => result)
        .increment(1);
}

/// A release version with no new sample at a step.
pub fn prometheus_no_data(service: &str, version: &str) {
    counter!(
        "ripcord_prometheus_no_data_total",
        "service" => service.to_string(),
        "version" => version.to_string()
    )
    .increment(1);
}

/// Counter resets seen at a step.
pub fn prometheus_resets(service: &str, resets: u64) {
    counter!("ripcord_prometheus_resets_total", "service" => service.to_string()).increment(resets);
}
