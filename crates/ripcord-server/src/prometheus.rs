//! The Prometheus source (`sources.prometheus` in a policy): per-version
//! counters read from a Prometheus server's HTTP API every step, their
//! increases ingested as pre-aggregated events.
//!
//! Each step asks `/api/v1/query` for `SELECTOR[RANGE]` at the hub's
//! clock: the raw samples of every series, not an `increase()`, so that the
//! counts are exact (no extrapolation, nothing lost between two windows).
//! Every series' newest sample is remembered, and an increase is the
//! difference from it; a value below it is a counter reset, after which the
//! new value is the increase (as Prometheus counts). Increases are summed
//! per version (the `version_label`) and counter, and sent as one event per
//! version, stamped with the step's time: `{outputs: 118,
//! hallucination: 3}` (unit `prometheus`; the policy counts outputs for the
//! sample-ratio check).
//!
//! **No data is never zero.** A version whose counters had no new sample
//! this step (its target was down, a scrape was missed, the version has no
//! series) is "no data": no event is sent for any version of the release,
//! since the versions are compared over the same periods, and what accrued
//! meanwhile is counted when every version has samples again. A
//! numerator's increases travel with their denominator's: they wait while
//! the denominator has no new sample, so that flags never arrive without
//! their outputs. A series' first sample only sets where it starts
//! (Prometheus's own rule): counters should be created at zero for each
//! version, as Prometheus's instrumentation guidelines advise.
//!
//! The remembered samples change only once the step's events are durable:
//! a step whose ingest fails is counted again by the next one. After a
//! restart (or on a new leader) the first step only sets where the series
//! start. Only the leader reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ripcord_core::Event;
use ripcord_core::ndjson::event_to_line;
use ripcord_core::policy::PrometheusSource;
use ripcord_core::{Dur, Time};
use serde::Deserialize;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::ingest::{Key, ingest_ndjson};
use crate::leader::{Server, stopped};
use crate::metrics;

/// Series one counter's answer may hold (a selector matching more is too
/// broad: narrow it).
pub const MAX_SERIES: usize = 10_000;
/// Bytes one answer may take.
pub const MAX_ANSWER: usize = 32 << 20;
/// Events one version's increases may be split into (each within the
/// per-event limit); more is refused as implausible.
const MAX_SPLIT: usize = 1_000;
/// A series with no sample for this long (and ten steps) is forgotten; if
/// it returns, its first sample sets where it starts again.
const FORGET_AFTER: Dur = Dur(15 * 60 * 1000);
/// The longest the reader sleeps before it looks for due steps again.
const TICK: Duration = Duration::from_secs(1);

/// Reads every service's `sources.prometheus` while this replica leads.
pub async fn run<S: Server>(app: Arc<S>, mut stop: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("Prometheus source: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut readers: HashMap<String, Reader> = HashMap::new();
    loop {
        let wait = step_all(app.hub(), &client, &mut readers).await;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopped(&mut stop, app.as_ref()) => break,
        }
    }
}

/// Runs every reader whose step is due, and forgets readers whose
/// service dropped its source: how long until the next step is due (at
/// most [`TICK`], so that new sources and a manual clock are noticed).
async fn step_all(
    hub: &Hub,
    client: &reqwest::Client,
    readers: &mut HashMap<String, Reader>,
) -> Duration {
    let mut wanted = Vec::new();
    for name in hub.service_names() {
        let Some(service) = hub.service(&name) else {
            continue;
        };
        let state = service.state.lock().await;
        let Some(source) = state.policy.sources.prometheus.clone() else {
            continue;
        };
        let versions = state
            .current
            .as_ref()
            .map(|r| vec![r.baseline.clone(), r.candidate.clone()])
            .unwrap_or_default();
        drop(state);
        wanted.push((name, source, versions));
    }
    readers.retain(|name, _| wanted.iter().any(|(n, _, _)| n == name));
    for (name, source, versions) in wanted {
        let reader = readers
            .entry(name.clone())
            .or_insert_with(|| Reader::new(source.clone()));
        if reader.source != source {
            // A changed source starts afresh: its series may be others.
            *reader = Reader::new(source);
        }
        let now = hub.now();
        if now < reader.due {
            continue;
        }
        // On a regular grid, unless a step ran so late that the next is
        // already due (then it starts again from now, without a burst).
        let next = reader.due + reader.source.step;
        reader.due = if next > now {
            next
        } else {
            now + reader.source.step
        };
        reader.step(hub, client, &name, &versions, now).await;
    }
    let now = hub.now();
    readers
        .values()
        .map(|r| Duration::from_millis(r.due.0.saturating_sub(now.0).max(10) as u64))
        .min()
        .unwrap_or(TICK)
        .min(TICK)
}

/// One service's reader: its source, when it next reads, and its tally.
struct Reader {
    source: PrometheusSource,
    due: Time,
    tally: Tally,
    /// The last read failed (logged once until it works again).
    failing: bool,
}

impl Reader {
    fn new(source: PrometheusSource) -> Reader {
        let counters = source.counters.len();
        Reader {
            source,
            due: Time(i64::MIN),
            tally: Tally::new(counters),
            failing: false,
        }
    }

    async fn step(
        &mut self,
        hub: &Hub,
        client: &reqwest::Client,
        service: &str,
        versions: &[String],
        now: Time,
    ) {
        let answers = match self.query_all(client, now).await {
            Ok(a) => a,
            Err(e) => return self.failed(service, &e),
        };
        let (tally, step) = self.tally.step(&self.source, &answers, versions, now);
        if let Err(e) = send(hub, service, &step, now).await {
            // Not kept: the next step counts this one's increases again.
            return self.failed(service, &e);
        }
        self.tally = tally;
        if self.failing {
            tracing::info!("Prometheus source of {service}: reading again");
            self.failing = false;
        }
        metrics::prometheus_step(service, "ok");
        metrics::prometheus_resets(service, step.resets);
        for version in &step.no_data {
            metrics::prometheus_no_data(service, version);
        }
        if step.unlabelled > 0 || step.invalid > 0 {
            tracing::warn!(
                "Prometheus source of {service}: {} series without the `{}` label and {} samples \
                 that are not counts (NaN, infinite or negative) were skipped",
                step.unlabelled,
                self.source.version_label,
                step.invalid,
            );
        }
    }

    async fn query_all(
        &self,
        client: &reqwest::Client,
        now: Time,
    ) -> Result<Vec<Vec<Series>>, String> {
        let mut answers = Vec::with_capacity(self.source.counters.len());
        for counter in &self.source.counters {
            let series = query(client, &self.source, &counter.selector, now)
                .await
                .map_err(|e| format!("counter {} ({}): {e}", counter.field, counter.selector))?;
            answers.push(series);
        }
        Ok(answers)
    }

    fn failed(&mut self, service: &str, error: &str) {
        metrics::prometheus_step(service, "failed");
        if !self.failing {
            tracing::warn!(
                "Prometheus source of {service}: {error}; its versions have no data until it \
                 reads again"
            );
        }
        self.failing = true;
    }
}

/// Sends a step's events through the ingest path, under an idempotency
/// key for the step.
async fn send(hub: &Hub, service: &str, step: &Step, now: Time) -> Result<(), String> {
    let limit = hub.options.limits.max_outputs;
    let mut body = String::new();
    for (version, values) in &step.counts {
        match split(values, limit) {
            Some(parts) => {
                for part in parts {
                    body.push_str(&line(service, version, &part, now));
                    body.push('\n');
                }
            }
            None => tracing::warn!(
                "Prometheus source of {service}: version {version}'s increases ({values:?}) \
                 would take more than {MAX_SPLIT} events; not counted"
            ),
        }
    }
    if body.is_empty() {
        return Ok(());
    }
    let key = Key::new(
        &format!("prometheus:{service}"),
        &now.0.to_string(),
        body.as_bytes(),
    )
    .map_err(|e| e.message)?;
    let outcome = ingest_ndjson(hub, body.as_bytes(), &key)
        .await
        .map_err(|e| format!("ingest: {}", e.message))?;
    if let Some(first) = outcome.rejected.first() {
        tracing::warn!(
            "Prometheus source of {service}: {} event(s) refused; first: {}",
            outcome.rejected_count,
            first.error
        );
    }
    Ok(())
}

fn line(service: &str, version: &str, values: &[(String, f64)], now: Time) -> String {
    event_to_line(&Event {
        ts: now,
        service: service.into(),
        version: version.into(),
        // Counters have no units; `srm.count: outputs` (which the policy
        // must have) treats the outputs as independent.
        unit: "prometheus".into(),
        segment: Vec::new(),
        values: values
            .iter()
            .map(|(k, v)| (k.as_str().into(), *v))
            .collect(),
    })
}

/// Splits a version's increases into events that each keep within the
/// per-event limit: the same number of equal parts for every field, so a
/// numerator stays within its denominator in each. `None` past
/// [`MAX_SPLIT`] parts.
fn split(values: &[(String, f64)], limit: f64) -> Option<Vec<Vec<(String, f64)>>> {
    let largest = values.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let parts = (largest / limit).ceil().max(1.0);
    if parts > MAX_SPLIT as f64 {
        return None;
    }
    let one: Vec<(String, f64)> = values.iter().map(|(k, v)| (k.clone(), v / parts)).collect();
    Some(vec![one; parts as usize])
}

/// One series of an answer: its labels and samples (ms, value), oldest
/// first.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, f64)>,
}

/// What a step counted.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Per release version: the fields and increases of its event.
    pub counts: Vec<(String, Vec<(String, f64)>)>,
    /// Release versions with no event this step.
    pub no_data: Vec<String>,
    pub resets: u64,
    /// Series without the version label.
    pub unlabelled: u64,
    /// Samples that are not counts (NaN, infinite, negative).
    pub invalid: u64,
}

/// What a reader remembers between steps.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Per counter: each series' newest sample (ms, value), by its labels.
    last: Vec<HashMap<String, (i64, f64)>>,
    /// Per release version: increases not yet sent, per counter.
    pending: BTreeMap<String, Vec<f64>>,
}

impl Tally {
    pub fn new(counters: usize) -> Tally {
        Tally {
            last: vec![HashMap::new(); counters],
            pending: BTreeMap::new(),
        }
    }

    /// Counts one step's answers (one per counter, in the source's order):
    /// the tally to keep once the step's events are durable, and what to
    /// send. `versions` are the running release's.
    pub fn step(
        &self,
        source: &PrometheusSource,
        answers: &[Vec<Series>],
        versions: &[String],
        now: Time,
    ) -> (Tally, Step) {
        let mut next = self.clone();
        let mut step = Step::default();
        // Per version and counter: the increase, and whether it had a new
        // sample at all (a flat counter is data; no sample is not).
        let mut fresh: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
        for (i, series) in answers.iter().enumerate().take(next.last.len()) {
            for s in series {
                let Some(version) = s.labels.get(&source.version_label) else {
                    step.unlabelled += 1;
                    continue;
                };
                let last = next.last[i]
                    .entry(key(&s.labels))
                    .or_insert((i64::MIN, f64::NAN));
                if let Some(d) = increase(last, &s.samples, &mut step) {
                    let slot = fresh
                        .entry(version.as_str())
                        .or_insert_with(|| vec![None; source.counters.len()]);
                    slot[i] = Some(slot[i].unwrap_or(0.0) + d);
                }
            }
        }
        next.forget(source, now);
        next.pending.retain(|v, _| versions.contains(v));
        let none = vec![None; source.counters.len()];
        for version in versions {
            let got = fresh.get(version.as_str()).unwrap_or(&none);
            let pending = next
                .pending
                .entry(version.clone())
                .or_insert_with(|| vec![0.0; source.counters.len()]);
            for (p, d) in pending.iter_mut().zip(got) {
                *p += d.unwrap_or(0.0);
            }
            if got.iter().all(Option::is_none) {
                step.no_data.push(version.clone());
            }
        }
        // A denominator's increases go out when every version has a new
        // sample of it: the versions are compared over the same periods,
        // and no version's outputs arrive without the other's.
        let ready: Vec<bool> = (0..source.counters.len())
            .map(|d| {
                let fresh_in = |v: &String| fresh.get(v.as_str()).is_some_and(|f| f[d].is_some());
                !versions.is_empty() && versions.iter().all(fresh_in)
            })
            .collect();
        for version in versions {
            let Some(pending) = next.pending.get_mut(version) else {
                continue;
            };
            let values = due(source, pending, &ready);
            if !values.is_empty() {
                step.counts.push((version.clone(), values));
            }
        }
        (next, step)
    }

    /// Forgets series with no sample lately, so that the memory held is
    /// bounded by what the answers hold.
    fn forget(&mut self, source: &PrometheusSource, now: Time) {
        let horizon = now.0 - FORGET_AFTER.0.max(10 * source.step.0);
        for last in &mut self.last {
            last.retain(|_, (t, _)| *t >= horizon);
        }
    }
}

/// A series' increase over its samples newer than `last`, which becomes
/// its newest sample; `None` when it had no new sample, or only its first
/// (which sets where it starts).
fn increase(last: &mut (i64, f64), samples: &[(i64, f64)], step: &mut Step) -> Option<f64> {
    let mut total = None;
    for &(t, v) in samples {
        if t <= last.0 {
            continue;
        }
        if !v.is_finite() || v < 0.0 {
            step.invalid += 1;
            continue;
        }
        if !last.1.is_nan() {
            let d = if v >= last.1 {
                v - last.1
            } else {
                step.resets += 1;
                v
            };
            total = Some(total.unwrap_or(0.0) + d);
        }
        *last = (t, v);
    }
    total
}

/// The fields a version's event carries now: each denominator that is
/// `ready` and has outputs to count, with the increases waiting on it (its
/// own and its numerators'); those are taken out of `pending`. A
/// denominator whose counter stood still has nothing to count: its
/// numerators keep waiting.
fn due(source: &PrometheusSource, pending: &mut [f64], ready: &[bool]) -> Vec<(String, f64)> {
    let mut values = Vec::new();
    for (d, counter) in source.counters.iter().enumerate() {
        let is_denominator = counter.denominator == counter.field;
        if !(is_denominator && ready[d] && pending[d] > 0.0) {
            continue;
        }
        for (i, c) in source.counters.iter().enumerate() {
            if c.denominator == counter.field {
                values.push((c.field.clone(), std::mem::take(&mut pending[i])));
            }
        }
    }
    values
}

/// A series' identity: its labels, in order.
fn key(labels: &BTreeMap<String, String>) -> String {
    let mut k = String::new();
    for (name, value) in labels {
        k.push_str(name);
        k.push('\u{0}');
        k.push_str(value);
        k.push('\u{0}');
    }
    k
}

/// `GET /api/v1/query?query=SELECTOR[RANGE]&time=NOW`: the raw samples of
/// every series the selector matches over the last few steps.
async fn query(
    client: &reqwest::Client,
    source: &PrometheusSource,
    selector: &str,
    now: Time,
) -> Result<Vec<Series>, String> {
    // Three steps back (at least 30 s): the samples since the last read,
    // even when a step ran late.
    let range_s = (3 * source.step.0).max(30_000) / 1000;
    let time = format!("{}.{:03}", now.0.div_euclid(1000), now.0.rem_euclid(1000));
    let timeout = Duration::from_millis(source.step.0.clamp(2_000, 10_000) as u64);
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", &format!("{selector}[{range_s}s]"))
        .append_pair("time", &time)
        .finish();
    let response = client
        .get(format!("{}/api/v1/query?{params}", source.url))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", source.url))?;
    let status = response.status();
    let body = bounded_body(response).await?;
    parse_answer(&body).map_err(|e| format!("HTTP {status}: {e}"))
}

async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("the answer is larger than {MAX_ANSWER} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<RawSeries>,
}

#[derive(Deserialize)]
struct RawSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Reads the API's JSON answer: a matrix of at most [`MAX_SERIES`] series.
pub fn parse_answer(body: &[u8]) -> Result<Vec<Series>, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a Prometheus API answer: {e}"))?;
    if answer.status != "success" {
        return Err(format!(
            "Prometheus answered {} ({}): {}",
            answer.status,
            answer.error_type.as_deref().unwrap_or("no type"),
            answer.error.as_deref().unwrap_or("no message")
        ));
    }
    let data = answer.data.ok_or("the answer has no data")?;
    if data.result_type != "matrix" {
        return Err(format!("expected a matrix, got a {}", data.result_type));
    }
    if data.result.len() > MAX_SERIES {
        return Err(format!(
            "the selector matches {} series, more than {MAX_SERIES}: narrow it",
            data.result.len()
        ));
    }
    Ok(data
        .result
        .into_iter()
        .map(|s| Series {
            labels: s.metric,
            samples: s
                .values
                .into_iter()
                .map(|(t, v)| ((t * 1000.0).round() as i64, v.parse().unwrap_or(f64::NAN)))
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::policy::PrometheusCounter;

    fn source() -> PrometheusSource {
        let counter = |field: &str, denominator: &str| PrometheusCounter {
            field: field.into(),
            selector: format!("{field}_total"),
            denominator: denominator.into(),
        };
        PrometheusSource {
            url: "http://127.0.0.1:9090".into(),
            step: Dur(10_000),
            version_label: "version".into(),
            counters: vec![
                counter("outputs", "outputs"),
                counter("hallucination", "outputs"),
            ],
        }
    }

    fn series(version: &str, instance: &str, samples: &[(i64, f64)]) -> Series {
        let mut labels = BTreeMap::new();
        labels.insert("version".to_string(), version.to_string());
        labels.insert("instance".to_string(), instance.to_string());
        Series {
            labels,
            samples: samples.to_vec(),
        }
    }

    fn counts(step: &Step) -> Vec<(&str, Vec<(&str, f64)>)> {
        step.counts
            .iter()
            .map(|(v, values)| {
                let values = values.iter().map(|(k, x)| (k.as_str(), *x)).collect();
                (v.as_str(), values)
            })
            .collect()
    }

    /// Runs steps of a release of `versions`, keeping each tally as a
    /// durable ingest would.
    fn run(versions: &[&str], steps: &[[Vec<Series>; 2]]) -> Vec<Step> {
        let source = source();
        let versions: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        let mut tally = Tally::new(2);
        steps
            .iter()
            .enumerate()
            .map(|(i, answers)| {
                let now = Time(10_000 * (i as i64 + 1));
                let (next, step) = tally.step(&source, answers, &versions, now);
                tally = next;
                step
            })
            .collect()
    }

    #[test]
    fn increases_are_exact_sums_per_version_sent_when_every_version_has_data() {
        let steps = run(
            &["v1", "v2"],
            &[
                [
                    vec![
                        series("v1", "a", &[(1_000, 100.0), (6_000, 110.0)]),
                        series("v1", "b", &[(1_000, 50.0)]),
                        series("v2", "a", &[(1_000, 7.0)]),
                    ],
                    vec![
                        series("v1", "a", &[(1_000, 1.0), (6_000, 1.0)]),
                        series("v2", "a", &[(1_000, 0.0)]),
                    ],
                ],
                [
                    vec![
                        // The sample already counted comes again in the range.
                        series("v1", "a", &[(6_000, 110.0), (11_000, 130.0)]),
                        series("v1", "b", &[(11_000, 55.0)]),
                        series("v2", "a", &[(11_000, 27.0)]),
                    ],
                    vec![
                        series("v1", "a", &[(6_000, 1.0), (11_000, 2.0)]),
                        series("v2", "a", &[(11_000, 3.0)]),
                    ],
                ],
            ],
        );
        // First step: v1's instance a has two samples (10 outputs, no
        // flag); every other series only starts, so v2 has no data and
        // v1's increases wait for it.
        assert!(counts(&steps[0]).is_empty());
        assert_eq!(steps[0].no_data, ["v2"]);
        assert_eq!(
            counts(&steps[1]),
            [
                ("v1", vec![("outputs", 35.0), ("hallucination", 1.0)]),
                ("v2", vec![("outputs", 20.0), ("hallucination", 3.0)]),
            ]
        );
        assert!(steps[1].no_data.is_empty());
    }

    #[test]
    fn a_reset_counts_the_new_value_and_a_gap_is_no_data_then_counted() {
        let steps = run(
            &["v1", "v2"],
            &[
                [
                    vec![
                        series("v1", "a", &[(1_000, 100.0)]),
                        series("v2", "a", &[(1_000, 40.0)]),
                    ],
                    vec![
                        series("v1", "a", &[(1_000, 5.0)]),
                        series("v2", "a", &[(1_000, 2.0)]),
                    ],
                ],
                [
                    // v1's process restarted: 100 → 8 is 8 new outputs.
                    // v2's target was not scraped: nothing new.
                    vec![
                        series("v1", "a", &[(11_000, 8.0)]),
                        series("v2", "a", &[(1_000, 40.0)]),
                    ],
                    vec![
                        series("v1", "a", &[(11_000, 1.0)]),
                        series("v2", "a", &[(1_000, 2.0)]),
                    ],
                ],
                [
                    // v2 is back: what accrued during the gap is counted now.
                    vec![
                        series("v1", "a", &[(21_000, 18.0)]),
                        series("v2", "a", &[(21_000, 90.0)]),
                    ],
                    vec![
                        series("v1", "a", &[(21_000, 1.0)]),
                        series("v2", "a", &[(21_000, 6.0)]),
                    ],
                ],
            ],
        );
        assert_eq!(steps[0].no_data, ["v1", "v2"]);
        // v2's gap holds v1's increases too: the versions are compared over
        // the same periods.
        assert!(counts(&steps[1]).is_empty());
        assert_eq!(steps[1].resets, 2);
        assert_eq!(steps[1].no_data, ["v2"]);
        assert_eq!(
            counts(&steps[2]),
            [
                ("v1", vec![("outputs", 18.0), ("hallucination", 1.0)]),
                ("v2", vec![("outputs", 50.0), ("hallucination", 4.0)]),
            ]
        );
        assert_eq!(steps[2].resets, 0);
        assert!(steps[2].no_data.is_empty());
    }

    #[test]
    fn flags_wait_for_their_outputs_and_a_still_counter_is_not_a_gap() {
        let steps = run(
            &["v1"],
            &[
                [
                    vec![series("v1", "a", &[(1_000, 10.0)])],
                    vec![series("v1", "j", &[(1_000, 0.0)])],
                ],
                [
                    // The judge's target was scraped, the app's was not.
                    vec![series("v1", "a", &[(1_000, 10.0)])],
                    vec![series("v1", "j", &[(11_000, 2.0)])],
                ],
                [
                    // The app was scraped but served nothing.
                    vec![series("v1", "a", &[(21_000, 10.0)])],
                    vec![series("v1", "j", &[(21_000, 2.0)])],
                ],
                [
                    vec![series("v1", "a", &[(31_000, 30.0)])],
                    vec![series("v1", "j", &[(31_000, 3.0)])],
                ],
            ],
        );
        // v1 had a new sample (the judge's): not a gap, only waiting.
        assert!(counts(&steps[1]).is_empty());
        assert!(steps[1].no_data.is_empty());
        assert!(counts(&steps[2]).is_empty());
        assert!(steps[2].no_data.is_empty());
        assert_eq!(
            counts(&steps[3]),
            [("v1", vec![("outputs", 20.0), ("hallucination", 3.0)])]
        );
    }

    #[test]
    fn other_versions_unlabelled_series_and_bad_samples_are_not_counted() {
        let mut unlabelled = series("v1", "x", &[(1_000, 1.0), (2_000, 9.0)]);
        unlabelled.labels.remove("version");
        let steps = run(
            &["v1"],
            &[
                [
                    vec![
                        series("v1", "a", &[(1_000, 1.0)]),
                        series("v0", "a", &[(1_000, 1.0)]),
                        unlabelled.clone(),
                    ],
                    vec![series("v1", "a", &[(1_000, 0.0)])],
                ],
                [
                    vec![
                        series(
                            "v1",
                            "a",
                            &[(11_000, f64::NAN), (12_000, 4.0), (13_000, -1.0)],
                        ),
                        series("v0", "a", &[(11_000, 500.0)]),
                        unlabelled,
                    ],
                    vec![series("v1", "a", &[(11_000, f64::INFINITY)])],
                ],
            ],
        );
        assert_eq!(
            counts(&steps[1]),
            [("v1", vec![("outputs", 3.0), ("hallucination", 0.0)])]
        );
        assert_eq!((steps[1].unlabelled, steps[1].invalid), (1, 3));
    }

    #[test]
    fn a_large_increase_is_split_into_events_within_the_limit() {
        let values = vec![
            ("outputs".to_string(), 25_000.0),
            ("hallucination".to_string(), 30.0),
        ];
        let parts = split(&values, 10_000.0).expect("within the split limit");
        assert_eq!(parts.len(), 3);
        for part in &parts {
            assert_eq!(part[0].1, 25_000.0 / 3.0);
            assert_eq!(part[1].1, 10.0);
        }
        assert_eq!(split(&values, 10.0), None);
        let small = vec![("outputs".to_string(), 0.0)];
        assert_eq!(split(&small, 10_000.0).map(|p| p.len()), Some(1));
    }

    #[test]
    fn answers_are_read_and_refused_with_prometheus_own_words() {
        let ok = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"o_total","version":"v1"},"values":[[1700000000.5,"3"],[1700000001,"NaN"]]}]}}"#;
        let series = parse_answer(ok).expect("a matrix");
        assert_eq!(series[0].labels["version"], "v1");
        assert_eq!(series[0].samples[0], (1_700_000_000_500, 3.0));
        assert!(series[0].samples[1].1.is_nan());
        let refused =
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(
            parse_answer(refused),
            Err("Prometheus answered error (bad_data): parse error at char 3".into())
        );
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            parse_answer(vector),
            Err("expected a matrix, got a vector".into())
        );
        let html = b"<html>502 Bad Gateway</html>";
        assert!(
            parse_answer(html)
                .unwrap_err()
                .starts_with("not a Prometheus API answer: ")
        );
        let many = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
            vec![r#"{"metric":{},"values":[]}"#; MAX_SERIES + 1].join(",")
        );
        assert_eq!(
            parse_answer(many.as_bytes()),
            Err("the selector matches 10001 series, more than 10000: narrow it".into())
        );
    }
}
