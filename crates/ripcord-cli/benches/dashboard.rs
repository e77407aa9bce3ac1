//! The dashboard's first render and weight with many releases, against the
//! real (release) `ripcord serve` over loopback. Prints figures; asserts
//! no timings.
//!
//! ```sh
//! cargo bench -p ripcord-cli --bench dashboard              # 50 releases
//! cargo bench -p ripcord-cli --bench dashboard -- --quick   # 10 releases
//! ```
//!
//! - Server: `GET /ui/` (one line per release, each with its live verdicts
//!   and health) and one release page (tiles with charts drawn from a
//!   recorded series), each fetched 50 times with a session cookie: median
//!   and 95th percentile time to the last byte, and bytes.
//! - Browser: when Debian's Chromium and Playwright's Python package are
//!   there (`scripts/test` installs both), `dashboard_render.py` loads
//!   both pages in Chromium 5 times each and prints the navigation's
//!   response end, first contentful paint, DOMContentLoaded and load, and
//!   the bytes transferred (page, stylesheet, script).

#[allow(dead_code)]
#[path = "../tests/support.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use support::{Serve, client, rfc3339_now};

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");
const POLICY: &str = include_str!("../tests/fixtures/dashboard-policy.yaml");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let releases = if quick { 10 } else { 50 };
    let dir = tempfile::tempdir()?;
    let serve =
        Serve::start_with(Path::new(BIN), dir.path(), &["--series-every", "1s"], false).await?;
    let c = client()?;
    println!("dashboard: {releases} releases, series every 1 s");
    for i in 0..releases {
        set_up(&c, &serve, &format!("svc-{i:02}")).await?;
    }
    // Traffic for a while, so every release has verdicts and the first
    // one a series of some length.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(if quick { 5 } else { 20 }) {
        for i in 0..releases {
            traffic(&c, &serve, &format!("svc-{i:02}")).await?;
        }
    }
    let cookie = log_in(&serve).await?;
    for path in ["/ui/", "/ui/releases/svc-00-1"] {
        let (median, p95, bytes) = fetch_times(&c, &serve, path, &cookie, 50).await?;
        println!(
            "  server  GET {path:<22} median {median:>6.1} ms  p95 {p95:>6.1} ms  {bytes:>7} bytes"
        );
    }
    browser(&serve, &cookie)?;
    Ok(())
}

async fn set_up(c: &reqwest::Client, s: &Serve, service: &str) -> anyhow::Result<()> {
    let calls = [
        (
            format!("/v1/policies/{service}"),
            "PUT",
            format!("service: {service}\n{POLICY}"),
        ),
        (
            format!("/v1/services/{service}/versions"),
            "POST",
            r#"{"version":"v1","model_id":"m1"}"#.to_string(),
        ),
        (
            format!("/v1/services/{service}/versions"),
            "POST",
            r#"{"version":"v2","model_id":"m2"}"#.to_string(),
        ),
        (
            "/v1/releases".to_string(),
            "POST",
            format!(r#"{{"service":"{service}","baseline":"v1","candidate":"v2"}}"#),
        ),
    ];
    for (path, method, body) in calls {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let r = c
            .request(method, s.url(&path))
            .header("authorization", s.auth())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{path}: {} {}", r.status(), r.text().await?);
        }
    }
    Ok(())
}

/// 200 events of a service, half on each version, 2% flagged.
async fn traffic(c: &reqwest::Client, s: &Serve, service: &str) -> anyhow::Result<()> {
    let ts = rfc3339_now();
    let mut body = String::new();
    for i in 0..200 {
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        let flag = u8::from(i % 50 == 0);
        body.push_str(&format!(
            r#"{{"ts":"{ts}","service":"{service}","version":"{version}","unit":"u{i}","values":{{"outputs":1,"moderation_fail":{flag},"hallucination":0}}}}"#
        ));
        body.push('\n');
    }
    let r = c
        .post(s.url("/v1/events"))
        .header("authorization", s.auth())
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("events: {} {}", r.status(), r.text().await?);
    }
    Ok(())
}

/// Logs in with the admin token; the session cookie (`name=value`).
async fn log_in(s: &Serve) -> anyhow::Result<String> {
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = no_redirects.get(s.url("/ui/login")).send().await?;
    let cookie = set_cookie(&form, "ripcord_login");
    let page = form.text().await?;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let body = format!("csrf={csrf}&token={}", s.token);
    let r = no_redirects
        .post(s.url("/ui/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let session = set_cookie(&r, "ripcord_session");
    if session.is_empty() {
        bail!("login failed: {}", r.status());
    }
    Ok(session)
}

fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string()
}

/// Median and 95th percentile of `n` fetches (ms), and the page's bytes.
async fn fetch_times(
    c: &reqwest::Client,
    s: &Serve,
    path: &str,
    cookie: &str,
    n: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = c.get(s.url(path)).header("cookie", cookie).send().await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        bytes = r.bytes().await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[n / 2], times[n * 95 / 100], bytes))
}

/// The browser's figures, when Chromium and Playwright are there.
fn browser(s: &Serve, cookie: &str) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dashboard_render.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .env("RIPCORD_URL", &s.base)
        .env("RIPCORD_COOKIE", cookie)
        .env("NO_PROXY", "127.0.0.1")
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        println!(
            "  browser: not measured ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
