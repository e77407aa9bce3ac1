//! `ripcord simulate`: a realistic event stream as NDJSON on stdout.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use ripcord_core::Time;
use ripcord_core::policy::Scenario;
use ripcord_core::policy::units::parse_duration;
use ripcord_sim::spec::{Gap, Regression, Spike, rate_per_second};
use ripcord_sim::{Shape, TrafficSpec, generate_to};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// conversational-agent, image-generator or data-augmentation.
    #[arg(long, default_value = "conversational-agent")]
    scenario: String,
    /// How long a period to simulate, e.g. 2h.
    #[arg(long, default_value = "2h")]
    duration: String,
    /// Mean traffic, e.g. 50/s or 3000/m.
    #[arg(long, default_value = "50/s")]
    rate: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A lasting change on the candidate, e.g. "moderation_fail x3 from 40m". Repeatable.
    #[arg(long)]
    regression: Vec<String>,
    /// A short burst (both versions unless "on candidate"), e.g. "moderation_fail x10 at 30m for 2m".
    #[arg(long)]
    spike: Vec<String>,
    /// A period without traffic, e.g. "at 50m for 3m".
    #[arg(long)]
    gap: Vec<String>,
    /// The candidate's share of units.
    #[arg(long, default_value_t = 0.05)]
    share: f64,
    #[arg(long)]
    service: Option<String>,
    #[arg(long, default_value = "v12")]
    baseline: String,
    #[arg(long, default_value = "v13")]
    candidate: String,
    /// Start instant (RFC 3339).
    #[arg(long, default_value = "2026-11-20T10:00:00Z")]
    start: String,
    /// Shape traffic like a recorded series (`timestamp,value` CSV).
    #[arg(long)]
    traffic_shape: Option<PathBuf>,
    /// Share of events delivered late (by up to 20 s).
    #[arg(long, default_value_t = 0.02)]
    late_share: f64,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let (spec, share) = spec_of(args)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let stats = generate_to(spec, share, &mut out).context("cannot write events")?;
    out.flush()?;
    eprintln!(
        "simulated {} events: {} candidate, {} baseline, {} delivered late",
        stats.events, stats.candidate, stats.baseline, stats.late
    );
    Ok(ExitCode::SUCCESS)
}

fn spec_of(a: SimulateArgs) -> anyhow::Result<(TrafficSpec, f64)> {
    let scenario = Scenario::parse(&a.scenario).ok_or_else(|| {
        anyhow!(
            "unknown scenario {:?}: use conversational-agent, image-generator or data-augmentation",
            a.scenario
        )
    })?;
    if !(a.share > 0.0 && a.share <= 1.0) {
        return Err(anyhow!("--share must be in (0, 1], got {}", a.share));
    }
    if !(0.0..=1.0).contains(&a.late_share) {
        return Err(anyhow!(
            "--late-share must be in [0, 1], got {}",
            a.late_share
        ));
    }
    let mut spec = TrafficSpec::new(scenario, a.seed);
    spec.duration = parse_duration(&a.duration).map_err(|e| anyhow!("--duration: {e}"))?;
    spec.rate = rate_per_second(&a.rate).map_err(|e| anyhow!("--rate: {e}"))?;
    spec.start = Time::parse_rfc3339(&a.start)
        .ok_or_else(|| anyhow!("--start: invalid RFC 3339 time {:?}", a.start))?;
    if let Some(s) = a.service {
        spec.service = s;
    }
    spec.baseline = a.baseline;
    spec.candidate = a.candidate;
    spec.late_share = a.late_share;
    spec.regressions = a
        .regression
        .iter()
        .map(|r| Regression::parse(r))
        .collect::<Result<_, _>>()?;
    spec.spikes = a
        .spike
        .iter()
        .map(|s| Spike::parse(s))
        .collect::<Result<_, _>>()?;
    spec.gaps = a
        .gap
        .iter()
        .map(|g| Gap::parse(g))
        .collect::<Result<_, _>>()?;
    if let Some(path) = a.traffic_shape {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        spec.shape = Shape::from_csv(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    Ok((spec, a.share))
}
