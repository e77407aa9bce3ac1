//! The Prometheus source against a real Prometheus server (Debian's
//! `prometheus` package, which `scripts/test` installs): it scrapes a small
//! exporter of per-version counters every second, ripcord reads the
//! counters every second and counts exactly what was added, across a
//! counter reset and a scrape gap, and detects a regression.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::support::{Result, Running, start};

const SERVICE: &str = "prom-chat";

/// What the exporter shows, and what was really added (a reset zeroes the
/// former, never the latter).
#[derive(Default)]
struct Counters {
    shown: BTreeMap<(&'static str, &'static str), f64>,
    added: BTreeMap<(&'static str, &'static str), f64>,
    /// Scrapes fail (503) while set: a gap.
    down: bool,
    scrapes: u64,
}

type Shared = Arc<Mutex<Counters>>;

fn lock(c: &Shared) -> std::sync::MutexGuard<'_, Counters> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

impl Counters {
    fn add(&mut self, version: &'static str, metric: &'static str, n: f64) {
        *self.shown.entry((version, metric)).or_default() += n;
        *self.added.entry((version, metric)).or_default() += n;
    }

    fn added(&self, version: &'static str, metric: &'static str) -> f64 {
        self.added.get(&(version, metric)).copied().unwrap_or(0.0)
    }

    /// The exposition text, every counter created at zero for both
    /// versions (as Prometheus's guidelines ask).
    fn text(&self) -> String {
        let mut out = String::new();
        for metric in ["genai_outputs_total", "genai_hallucinations_total"] {
            out.push_str(&format!("# TYPE {metric} counter\n"));
            for version in ["v1", "v2"] {
                let v = self.shown.get(&(version, metric)).copied().unwrap_or(0.0);
                out.push_str(&format!("{metric}{{version=\"{version}\"}} {v}\n"));
            }
        }
        out
    }
}

/// Serves `/metrics` on a loopback port.
async fn exporter(counters: Shared) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let counters = counters.clone();
            async move {
                let mut c = lock(&counters);
                if c.down {
                    return (StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                c.scrapes += 1;
                (StatusCode::OK, c.text())
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// A Prometheus server scraping `target` every second, killed on drop.
struct Prometheus {
    _child: Child,
    url: String,
}

async fn prometheus(dir: &Path, target: u16) -> Result<Prometheus> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let binary = std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .expect("prometheus is not on PATH: run the tests with scripts/test, which installs Debian's prometheus package");
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: genai\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )?;
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let http = crate::support::client()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{url}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(Prometheus { _child: child, url });
        }
        assert!(Instant::now() < deadline, "Prometheus did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn policy(url: &str) -> String {
    format!(
        "service: {SERVICE}
srm: {{count: outputs}}
signals:
  hallucination: {{category: safety, kind: rate}}
criteria:
  hallucination_rel: {{signal: hallucination, max_ratio: 1.2, min_samples: 100, window: 10m, for: 0s}}
triggers:
  safety: {{when: hallucination_rel, severity: critical, action: pause}}
rollout:
  steps:
    - {{share: 0.5, hold: 1h}}
sources:
  prometheus:
    url: {url}
    step: 1s
    counters:
      outputs: genai_outputs_total{{job=\"genai\"}}
      hallucination: genai_hallucinations_total{{job=\"genai\"}}
"
    )
}

/// Adds traffic every 100 ms: 20 outputs per version, and a flag every
/// `every[v]` ticks (5 ticks: 1%; 1 tick: 5%).
fn traffic(counters: Shared, every: [u64; 2]) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tick += 1;
            let mut c = lock(&counters);
            for (version, every) in ["v1", "v2"].into_iter().zip(every) {
                c.add(version, "genai_outputs_total", 20.0);
                if tick.is_multiple_of(every) {
                    c.add(version, "genai_hallucinations_total", 1.0);
                }
            }
        }
    })
}

/// Outputs and flags ripcord counted per version (baseline, candidate).
async fn counted(h: &Running) -> ((f64, f64), (f64, f64)) {
    let (_, readings) = h
        .server
        .app
        .hub
        .readings(SERVICE)
        .await
        .expect("the release's readings");
    let e = &readings[0].evidence;
    let baseline = e.baseline.as_ref().map_or((0.0, 0.0), |s| (s.n, s.sum));
    (baseline, (e.candidate.n, e.candidate.sum))
}

/// The service's decisions, as NDJSON.
async fn decisions(h: &Running) -> Result<String> {
    let url = h.url(&format!("/v1/decisions?service={SERVICE}"));
    Ok(h.http
        .get(url)
        .bearer_auth(&h.token)
        .send()
        .await?
        .text()
        .await?)
}

/// A metric's value on ripcord's `/metrics`: the series of `name` with
/// all of `labels` (`a="x"` pairs, comma-separated, in any order).
async fn metric(h: &Running, name: &str, labels: &str) -> Result<f64> {
    let text = h.http.get(h.url("/metrics")).send().await?.text().await?;
    let value = text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let inner = series
            .strip_prefix(name)?
            .strip_prefix('{')?
            .strip_suffix('}')?;
        let has: Vec<&str> = inner.split(',').collect();
        labels.split(',').all(|p| has.contains(&p)).then_some(value)
    });
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0.0))
}

async fn until(what: &str, secs: u64, mut done: impl AsyncFnMut() -> Result<bool>) -> Result {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await? {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Waits until the exporter has been scraped `n` more times.
async fn scrapes(counters: &Shared, n: u64) -> Result {
    let start = lock(counters).scrapes;
    until("scrapes", 20, async || {
        Ok(lock(counters).scrapes >= start + n)
    })
    .await
}

#[tokio::test]
async fn a_real_prometheus_feeds_exact_counts_across_a_reset_and_a_gap_and_a_regression_is_caught()
-> Result {
    let counters = Shared::default();
    let port = exporter(counters.clone()).await?;
    let h = start().await?;
    let prom = prometheus(h.dir.path(), port).await?;
    h.put_policy(SERVICE, policy(&prom.url)).await?;
    h.register_versions(SERVICE, &[("v1", "m-1"), ("v2", "m-2")])
        .await?;
    let (status, body) = h
        .post(
            "/v1/releases",
            &serde_json::json!({"service": SERVICE, "baseline": "v1", "candidate": "v2"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");

    // Counters at zero, scraped, and read by ripcord: where they start.
    let ok = format!("result=\"ok\",service=\"{SERVICE}\"");
    until("two steps read", 30, async || {
        Ok(metric(&h, "ripcord_prometheus_steps_total", &ok).await? >= 2.0)
    })
    .await?;
    scrapes(&counters, 2).await?;

    // Healthy traffic (1% on both), then v1's process restarts: traffic
    // stops, a scrape sees the last value, the counters drop to zero.
    let healthy = traffic(counters.clone(), [5, 5]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    healthy.abort();
    scrapes(&counters, 2).await?;
    {
        let mut c = lock(&counters);
        c.shown.retain(|(v, _), _| *v != "v1");
    }
    let healthy = traffic(counters.clone(), [5, 5]);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A scrape gap of 3 s while traffic goes on: no data, never zeros.
    let gap = |v: &str| format!("service=\"{SERVICE}\",version=\"{v}\"");
    let before = metric(&h, "ripcord_prometheus_no_data_total", &gap("v2")).await?;
    lock(&counters).down = true;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = counted(&h).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        counted(&h).await,
        during,
        "nothing is counted during the gap"
    );
    let after = metric(&h, "ripcord_prometheus_no_data_total", &gap("v2")).await?;
    assert!(
        after > before,
        "the gap shows as no data ({before} → {after})"
    );
    lock(&counters).down = false;
    tokio::time::sleep(Duration::from_secs(2)).await;
    healthy.abort();

    // Once the last values are scraped and read, ripcord has counted
    // exactly what was added, the gap's traffic included.
    scrapes(&counters, 2).await?;
    let want = {
        let c = lock(&counters);
        let of = |v| {
            (
                c.added(v, "genai_outputs_total"),
                c.added(v, "genai_hallucinations_total"),
            )
        };
        (of("v1"), of("v2"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted(&h).await != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        counted(&h).await,
        want,
        "(baseline, candidate) (outputs, flags)"
    );
    assert!(want.0.0 >= 1_000.0 && want.1.0 >= 1_000.0, "{want:?}");
    let resets = metric(
        &h,
        "ripcord_prometheus_resets_total",
        &format!("service=\"{SERVICE}\""),
    )
    .await?;
    assert_eq!(resets, 2.0, "v1's two counters were reset");
    let so_far = decisions(&h).await?;
    assert!(
        !so_far.contains("\"criterion_breached\""),
        "healthy traffic is no regression: {so_far}"
    );

    // The candidate's hallucinations go from 1% to 5%: caught.
    let regression = traffic(counters.clone(), [5, 1]);
    until("the regression caught", 60, async || {
        Ok(decisions(&h).await?.contains("\"criterion_breached\""))
    })
    .await?;
    regression.abort();
    let release = h
        .get_json(&format!(
            "/v1/releases/{}",
            body["id"].as_str().unwrap_or_default()
        ))
        .await?;
    assert_eq!(release["state"], "paused");
    Ok(())
}
