//! Replay throughput against merely parsing the same file.
//!
//! `cargo bench -p ripcord-cli --bench replay` generates a 10M-event stream
//! with the simulator, then times `ripcord replay --format ndjson` (the real
//! binary, output to /dev/null) and two parse-only loops over the same file
//! with serde_json: into `serde_json::Value`, and into `IgnoredAny` (a
//! syntax check). `-- --quick` uses 1M events; `RIPCORD_BENCH_EVENTS` sets
//! any count. Prints a markdown table.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use ripcord_core::Dur;
use ripcord_core::policy::Scenario;
use ripcord_sim::spec::Regression;
use ripcord_sim::{TrafficSpec, generate_to};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events: f64 = std::env::var("RIPCORD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1e6 } else { 1e7 });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.ndjson");

    // 1,000 events/s for as long as it takes to reach the count.
    let rate = 1000.0;
    let mut spec = TrafficSpec::new(Scenario::ConversationalAgent, 42);
    spec.rate = rate;
    spec.duration = Dur((events / rate * 1000.0) as i64);
    spec.regressions = vec![Regression::parse("moderation_fail x3 from 100h").expect("spec")];
    let began = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).expect("create"));
    let stats = generate_to(spec, 0.05, &mut out).expect("write");
    out.flush().expect("flush");
    drop(out);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "generated {} events ({:.0} MB) in {:.1} s",
        stats.events,
        bytes as f64 / 1e6,
        began.elapsed().as_secs_f64()
    );
    let lines = stats.events as f64 + 1.0;

    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/conversational-agent/policy.yaml"
    );
    let replay = time(|| {
        let status = Command::new(env!("CARGO_BIN_EXE_ripcord"))
            .args([
                "replay", "--format", "ndjson", "--policy", policy, "--events",
            ])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run ripcord");
        assert!(
            status.success() || status.code() == Some(3),
            "replay failed: {status}"
        );
    });
    let value = time(|| parse_all::<serde_json::Value>(&path));
    let ignored = time(|| parse_all::<serde::de::IgnoredAny>(&path));

    println!("| what | events/s | relative to parse-only (Value) |");
    println!("|---|---|---|");
    for (name, secs) in [
        ("`ripcord replay` (parse + engine + output)", replay),
        ("serde_json parse only, into `Value`", value),
        ("serde_json syntax check only, `IgnoredAny`", ignored),
    ] {
        println!("| {name} | {:.0} | {:.2} |", lines / secs, value / secs);
    }
    println!();
    println!(
        "{} events, {:.0} MB, 1 file; best of 3 runs each",
        stats.events,
        bytes as f64 / 1e6
    );
}

/// Best of three, in seconds.
fn time(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn parse_all<T: serde::de::DeserializeOwned>(path: &std::path::Path) {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).expect("open"));
    let mut line = Vec::with_capacity(1024);
    let mut n = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        if serde_json::from_slice::<T>(&line).is_ok() {
            n += 1;
        }
    }
    std::hint::black_box(n);
}
