//! `ripcord bench detect`: how rarely ripcord reverts a good release and
//! how fast it reverts a bad one, against peers and the theoretical limit.
//! Every run goes through the real engine (`ripcord_sim::detect`); the
//! output is the markdown committed to BENCHMARKS.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow};
use ripcord_core::Dur;
use ripcord_sim::detect::{Case, Kind, Outcome, RAMP, run};
use ripcord_sim::limits::{cusum_delay_outputs, lorden_delay_outputs, wald_expected_outputs};
use ripcord_sim::peers::{
    ArgoThreshold, BurnRate, Detector, Flagger, GrowthBookGuardrail, Kayenta, NaiveZ, Sprt,
};
use ripcord_sim::traffic::Shape;

mod realistic;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(clap::Subcommand)]
enum BenchWhat {
    /// False rollbacks under no change, detection delays against Wald's
    /// bound and the oracle SPRT, and peer rules on the same streams.
    Detect(DetectArgs),
}

#[derive(clap::Args)]
struct DetectArgs {
    /// A reduced grid with fewer runs, for CI (about a minute on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Folder with the real traffic series (nyc_taxi.csv, Twitter_volume_AAPL.csv).
    #[arg(long, default_value = "data/traffic")]
    traffic: PathBuf,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Runs per A/A kind and per delay cell, instead of the mode's default.
    #[arg(long)]
    runs: Option<usize>,
    /// `min_samples` of the rate criterion in the delay grid, instead of the
    /// policy default (100): shows what the guard costs on large effects.
    #[arg(long)]
    min_samples: Option<u64>,
    /// Run one section only.
    #[arg(long, value_parser = ["false-rollbacks", "rates", "others", "change", "realistic"])]
    only: Option<String>,
}

pub fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Detect(a) => detect(a),
    }
}

/// How much of everything to run.
struct Plan {
    aa_runs: usize,
    aa_rate_hours: i64,
    aa_event_hours: i64,
    delay_runs: usize,
    ratios: Vec<f64>,
    bases: Vec<f64>,
    shares: Vec<f64>,
    threads: usize,
    shapes: Vec<(String, Option<Vec<f64>>)>,
    min_samples: Option<u64>,
}

fn detect(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let shapes = load_shapes(&args.traffic)?;
    let plan = if args.quick {
        Plan {
            aa_runs: 150,
            aa_rate_hours: 12,
            aa_event_hours: 3,
            delay_runs: 15,
            ratios: vec![1.5, 2.0, 5.0],
            bases: vec![1e-3, 1e-2],
            shares: vec![0.1, 0.5],
            threads,
            shapes,
            min_samples: args.min_samples,
        }
    } else {
        Plan {
            aa_runs: 1000,
            aa_rate_hours: 24,
            aa_event_hours: 6,
            delay_runs: 100,
            ratios: vec![1.25, 1.5, 2.0, 3.0, 5.0],
            bases: vec![1e-4, 1e-3, 1e-2],
            shares: vec![0.01, 0.1, 0.5],
            threads,
            shapes,
            min_samples: args.min_samples,
        }
    };
    let plan = match args.runs {
        Some(n) => Plan {
            aa_runs: n.max(1),
            delay_runs: n.max(1),
            ..plan
        },
        None => plan,
    };
    let mut mode = if args.quick { " --quick" } else { "" }.to_string();
    if let Some(n) = args.min_samples {
        mode.push_str(&format!(" --min-samples {n}"));
    }
    println!("<!-- cargo run --release -- bench detect{mode} -->\n");
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if wanted("false-rollbacks") {
        false_rollbacks(&plan)?;
    }
    if wanted("rates") {
        rate_delays(&plan)?;
    }
    if wanted("others") {
        other_delays(&plan)?;
    }
    if wanted("change") {
        change_delays(&plan)?;
    }
    if wanted("realistic") {
        realistic::false_rollbacks(&realistic::Plan {
            runs: args.runs.unwrap_or(if args.quick { 100 } else { 1000 }),
            threads: plan.threads,
            shapes: &plan.shapes,
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Diurnal load, and the real series played at their own speed from a
/// random point (seeded by the run).
fn load_shapes(folder: &std::path::Path) -> anyhow::Result<Vec<(String, Option<Vec<f64>>)>> {
    let mut shapes = vec![("synthetic diurnal".to_string(), None)];
    for (file, label) in [
        ("nyc_taxi.csv", "NYC taxi demand (30 min)"),
        ("Twitter_volume_AAPL.csv", "Twitter volume AAPL (5 min)"),
    ] {
        let path = folder.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (pass --traffic DIR)", path.display()))?;
        let Shape::Series(values) = Shape::from_csv(&text).map_err(|e| anyhow!("{file}: {e}"))?
        else {
            continue;
        };
        shapes.push((label.to_string(), Some(values)));
    }
    Ok(shapes)
}

/// The slice of a real series that covers `duration` at real speed.
fn real_speed(values: &[f64], label: &str, duration: Dur, seed: u64) -> Shape {
    let step_mins = if label.contains("30 min") { 30 } else { 5 };
    let len = ((duration.0 / 60_000) / step_mins).max(1) as usize;
    let len = len.min(values.len());
    let start = (seed as usize).wrapping_mul(7_919) % (values.len() - len + 1);
    let slice = &values[start..start + len];
    let mean = slice.iter().sum::<f64>() / len as f64;
    Shape::Series(
        slice
            .iter()
            .map(|v| if mean > 0.0 { v / mean } else { 1.0 })
            .collect(),
    )
}

/// Runs cases on worker threads, in order of the returned outcomes.
fn run_all<F>(cases: &[Case], threads: usize, peers: F) -> anyhow::Result<Vec<Outcome>>
where
    F: Fn(&Case) -> Vec<Box<dyn Detector + Send>> + Sync,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Outcome, String>>>> =
        Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else {
                        break;
                    };
                    let mut p = peers(case);
                    let outcome = run(case, &mut p);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(outcome);
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?;
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err("not run".into()))
                .map_err(|e| anyhow!(e))
        })
        .collect()
}

fn rate_peers(case: &Case) -> Vec<Box<dyn Detector + Send>> {
    let p0 = case.base_rate;
    vec![
        Box::new(ArgoThreshold::with_threshold(1.2 * p0)),
        Box::new(ArgoThreshold::with_threshold(2.0 * p0)),
        Box::new(Flagger::with_max_rate(1.2 * p0)),
        Box::new(Flagger::with_max_rate(2.0 * p0)),
        Box::new(Kayenta::with_ratio(1.0)),
        Box::new(BurnRate::new(p0)),
        Box::new(GrowthBookGuardrail::one_sided(1.0)),
        Box::new(NaiveZ::new(0.05, 1.0)),
    ]
}

fn aa_case(plan: &Plan, kind: Kind, i: usize) -> Case {
    let mut c = Case::new(kind, 10_000 + i as u64);
    let hours = if kind.is_rate() || kind == Kind::Fairness {
        plan.aa_rate_hours
    } else {
        plan.aa_event_hours
    };
    c.duration = Dur::from_mins(hours * 60);
    if kind == Kind::Change {
        c.duration = RAMP + c.duration;
    }
    if !kind.is_rate() && kind != Kind::Fairness {
        // One event per output: a smaller service keeps the runs affordable.
        c.outputs_per_s = 5.0;
    }
    let (label, series) = &plan.shapes[i % plan.shapes.len()];
    if let Some(v) = series {
        c.shape = real_speed(v, label, c.duration, c.seed);
    }
    c
}

fn false_rollbacks(plan: &Plan) -> anyhow::Result<()> {
    println!("## False rollbacks: A/A releases (no change)\n");
    println!(
        "Each release is watched continuously with bursts (3× volume for 10 min, twice a day) and \
         5% of events delivered up to 5 min late; runs cycle through {}. Goal: rate ≤ 1 − confidence = 0.05.\n",
        plan.shapes
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let shape_names: Vec<&str> = plan.shapes.iter().map(|s| short_shape(&s.0)).collect();
    println!(
        "| criterion kind | traffic | runs | watched per run | false rollbacks | by traffic ({}) | rate | goal met |",
        shape_names.join(" / ")
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    let mut rate_outcomes = Vec::new();
    for kind in Kind::ALL {
        let cases: Vec<Case> = (0..plan.aa_runs).map(|i| aa_case(plan, kind, i)).collect();
        let with_peers = kind == Kind::RateRatio;
        let outcomes = run_all(&cases, plan.threads, |c| {
            if with_peers {
                rate_peers(c)
            } else {
                Vec::new()
            }
        })?;
        eprintln!("A/A {} done", kind.name());
        if kind == Kind::Change {
            print_change_aa(plan, &cases, &outcomes);
            continue;
        }
        let fired = outcomes.iter().filter(|o| o.fired_at.is_some()).count();
        let rate = fired as f64 / cases.len() as f64;
        println!(
            "| {} | {}/s mean | {} | {} | {} | {} | {:.3} | {} |",
            kind.name(),
            cases[0].outputs_per_s,
            cases.len(),
            cases[0].duration,
            fired,
            by_shape(plan, &outcomes, |o| o.fired_at.is_some()),
            rate,
            if rate <= 0.05 { "yes" } else { "**no**" }
        );
        if with_peers {
            rate_outcomes = outcomes;
        }
    }
    print_peer_aa(&rate_outcomes);
    Ok(())
}

fn short_shape(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label)
}

/// Counts of `what` among the runs of each traffic shape (runs cycle through them).
fn by_shape(plan: &Plan, outcomes: &[Outcome], what: impl Fn(&Outcome) -> bool) -> String {
    let k = plan.shapes.len().max(1);
    (0..k)
        .map(|s| {
            let n = outcomes
                .iter()
                .enumerate()
                .filter(|(i, o)| i % k == s && what(o))
                .count();
            n.to_string()
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// After promotion the goal is a mean time between false alarms, so the
/// figure is alarms per watched day.
fn print_change_aa(plan: &Plan, cases: &[Case], outcomes: &[Outcome]) {
    let mut watched_days = 0.0;
    let mut alarms = 0;
    for (c, o) in cases.iter().zip(outcomes) {
        let Some(promoted) = o.promoted_at else {
            continue;
        };
        let end = o.fired_at.unwrap_or(c.duration);
        watched_days += (end.0 - promoted.0).max(0) as f64 / 86_400_000.0;
        if o.fired_at.is_some_and(|f| f > promoted) {
            alarms += 1;
        }
    }
    let every = if alarms > 0 {
        format!("{:.1} days", watched_days / f64::from(alarms))
    } else {
        format!("> {watched_days:.0} days")
    };
    let after_promotion = |o: &Outcome| {
        o.fired_at
            .is_some_and(|f| o.promoted_at.is_some_and(|p| f > p))
    };
    println!(
        "| {} | {}/s mean | {} | {}h after promotion | {alarms} | {} | one per {every} | {} (policy: {}) |",
        Kind::Change.name(),
        cases[0].outputs_per_s,
        cases.len(),
        plan.aa_rate_hours,
        by_shape(plan, outcomes, after_promotion),
        if alarms == 0 || watched_days / f64::from(alarms) >= 30.0 * 0.8 {
            "yes"
        } else {
            "**no**"
        },
        cases[0].false_alarm_every
    );
}

fn print_peer_aa(outcomes: &[Outcome]) {
    if outcomes.is_empty() {
        return;
    }
    println!(
        "\nPeers on the same A/A streams as \"rate vs baseline\" (baseline rate 1%, share 50%):\n"
    );
    println!("| rule | false rollbacks | rate |");
    println!("|---|---:|---:|");
    let fired = outcomes.iter().filter(|o| o.fired_at.is_some()).count();
    println!(
        "| ripcord | {fired} | {:.3} |",
        fired as f64 / outcomes.len() as f64
    );
    for (j, peer) in outcomes[0].peers.iter().enumerate() {
        let name = &peer.name;
        let fired = outcomes
            .iter()
            .filter(|o| o.peers.get(j).is_some_and(|p| p.fired_at.is_some()))
            .count();
        println!(
            "| {name} | {fired} | {:.3} |",
            fired as f64 / outcomes.len() as f64
        );
    }
    println!();
}

/// Delay figures of a set of runs of one cell.
struct Delays {
    detected: f64,
    mean_outputs: f64,
    mean_candidate: f64,
    p90_candidate: f64,
    mean_minutes: f64,
    p90_minutes: f64,
}

fn delays(cases: &[Case], outcomes: &[Outcome]) -> Delays {
    let mut outputs = Vec::new();
    let mut candidate = Vec::new();
    let mut minutes = Vec::new();
    for (c, o) in cases.iter().zip(outcomes) {
        if let Some(d) = o.delay(c) {
            outputs.push(o.outputs);
            candidate.push(o.candidate_outputs);
            minutes.push(d.0 as f64 / 60_000.0);
        }
    }
    Delays {
        detected: outputs.len() as f64 / cases.len().max(1) as f64,
        mean_outputs: mean(&outputs),
        mean_candidate: mean(&candidate),
        p90_candidate: p90(&mut candidate),
        mean_minutes: mean(&minutes),
        p90_minutes: p90(&mut minutes),
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn p90(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.9).ceil() as usize).clamp(1, v.len()) - 1]
}

/// A peer's share of runs detected, mean minutes since the change and mean
/// outputs (both versions) since the change.
fn peer_delay(cases: &[Case], outcomes: &[Outcome], j: usize) -> (f64, f64, f64) {
    let mut minutes = Vec::new();
    let mut outputs = Vec::new();
    for (c, o) in cases.iter().zip(outcomes) {
        if let Some(p) = o.peers.get(j)
            && let Some(at) = p.fired_at
            && at >= c.change_at
        {
            minutes.push((at.0 - c.change_at.0) as f64 / 60_000.0);
            outputs.push(p.outputs);
        }
    }
    (
        minutes.len() as f64 / cases.len().max(1) as f64,
        mean(&minutes),
        mean(&outputs),
    )
}

const GRID_RATE: f64 = 200.0;
const GRID_HORIZON_HOURS: i64 = 72;

/// Late-onset rows: the regression starts this far into the release.
const LATE_ONSET: Dur = Dur::from_mins(180);

fn rate_delays(plan: &Plan) -> anyhow::Result<()> {
    println!("## Detection delay: rates against the baseline\n");
    println!(
        "`max_ratio: 1` (any increase), confidence 0.95, window 30m, `min_samples: {}`, diurnal traffic at \
         {GRID_RATE} outputs/s mean, {} runs per cell, horizon {GRID_HORIZON_HOURS} h. The regression is present from the start \
         (onset 0) or starts {} h in (late-onset rows, share 50% and 10%, base rate 1%); delays and outputs \
         count from the onset, and a run that fired before it is a false alarm, not a detection. \"outputs\" \
         are both versions'. Wald's bound is the least expected number of outputs any test with α = 0.05 \
         and the observed miss rate β (at least 0.001) needs. The SPRT is the level-α oracle that knows the \
         true odds ratio (threshold ln(1/α), no lower boundary, so it never stops to accept); its mean is \
         given ± its standard error. Without a lower boundary the SPRT carries the evidence for H0 it \
         gathered before a late onset, which is why it is slow there.\n",
        plan.min_samples
            .map_or_else(|| "100".to_string(), |n| n.to_string()),
        plan.delay_runs,
        LATE_ONSET.0 / 3_600_000
    );
    println!(
        "| ratio | base rate | share | onset | detected | fired before onset | mean candidate outputs | p90 candidate outputs | mean min | p90 min | Wald bound (outputs) | ripcord / bound | SPRT mean min ± SE | SPRT / bound ± SE |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut peer_rows = Vec::new();
    let mut grid_ratios = Vec::new();
    for &share in &plan.shares {
        for &base in &plan.bases {
            for &ratio in &plan.ratios {
                let (cases, outcomes) = rate_cell(plan, base, share, ratio, Dur::ZERO)?;
                grid_ratios.extend(print_rate_row(&cases, &outcomes, ratio));
                if share == 0.5 && base == 1e-2 {
                    peer_rows.push((ratio, cases, outcomes));
                }
                eprintln!("grid {ratio}× {base} {share} done");
            }
        }
    }
    let mut late_ratios = Vec::new();
    for share in [0.5, 0.1] {
        for &ratio in &plan.ratios {
            let (cases, outcomes) = rate_cell(plan, 1e-2, share, ratio, LATE_ONSET)?;
            late_ratios.extend(print_rate_row(&cases, &outcomes, ratio));
            eprintln!("late onset {ratio}× {share} done");
        }
    }
    print_ratio_summary("regression from the start", &grid_ratios);
    print_ratio_summary("late onsets", &late_ratios);
    print_peer_delays(&peer_rows);
    real_traffic_delays(plan)?;
    Ok(())
}

/// The runs of one cell of the rate grid, with the oracle SPRT (and the
/// peers in the cell they are compared in) on the same streams.
fn rate_cell(
    plan: &Plan,
    base: f64,
    share: f64,
    ratio: f64,
    onset: Dur,
) -> anyhow::Result<(Vec<Case>, Vec<Outcome>)> {
    let cases: Vec<Case> = (0..plan.delay_runs)
        .map(|i| {
            let mut c = grid_case(base, share, ratio, i);
            c.change_at = onset;
            c.min_samples = plan.min_samples;
            c
        })
        .collect();
    let with_peers = share == 0.5 && base == 1e-2 && onset == Dur::ZERO;
    let oracle = |c: &Case| -> Vec<Box<dyn Detector + Send>> {
        let p1 = (c.base_rate * ratio).min(1.0);
        let mut v: Vec<Box<dyn Detector + Send>> = vec![Box::new(Sprt::new(c.base_rate, p1, 0.05))];
        if with_peers {
            v.extend(rate_peers(c));
        }
        v
    };
    let outcomes = run_all(&cases, plan.threads, oracle)?;
    Ok((cases, outcomes))
}

/// Prints one cell's row; returns ripcord's ratio to Wald's bound when the
/// cell has one (at least 95% detected within the horizon).
fn print_rate_row(cases: &[Case], outcomes: &[Outcome], ratio: f64) -> Option<f64> {
    let c = cases.first()?;
    let (base, share) = (c.base_rate, c.share);
    let d = delays(cases, outcomes);
    let early = outcomes
        .iter()
        .zip(cases)
        .filter(|(o, c)| o.fired_at.is_some_and(|f| f < c.change_at))
        .count();
    let beta = (1.0 - d.detected).max(0.001);
    let bound = wald_expected_outputs(base * ratio, base, share, 0.05, beta);
    let sprt = sprt_delays(cases, outcomes);
    // A mean over the detected runs only says little when many ran out of time.
    let ratio_to_bound = |found: f64, outputs: f64| {
        if found >= 0.95 {
            fmt(outputs / bound)
        } else {
            "— (horizon)".to_string()
        }
    };
    let sprt_found = if sprt.found < 1.0 {
        format!(" ({:.0}% found)", sprt.found * 100.0)
    } else {
        String::new()
    };
    println!(
        "| {ratio}× | {base} | {share} | {} | {:.0}% | {early} | {} | {} | {} | {} | {} | {} | {} ± {}{sprt_found} | {} ± {} |",
        c.change_at,
        d.detected * 100.0,
        fmt(d.mean_candidate),
        fmt(d.p90_candidate),
        fmt(d.mean_minutes),
        fmt(d.p90_minutes),
        fmt(bound),
        ratio_to_bound(d.detected, d.mean_outputs),
        fmt(sprt.minutes.0),
        fmt(sprt.minutes.1),
        ratio_to_bound(sprt.found, sprt.outputs.0),
        fmt(sprt.outputs.1 / bound),
    );
    (d.detected >= 0.95).then(|| d.mean_outputs / bound)
}

/// The median and worst ratio to Wald's bound over the cells with one.
fn print_ratio_summary(label: &str, ratios: &[f64]) {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let (Some(worst), Some(middle)) = (sorted.last(), sorted.get(n / 2)) else {
        return;
    };
    let median = if n % 2 == 1 {
        *middle
    } else {
        (sorted[n / 2 - 1] + middle) / 2.0
    };
    println!(
        "\nripcord / bound, {label}: median {}, worst {} over {n} cells with a figure",
        fmt(median),
        fmt(*worst)
    );
}

/// The oracle's share of runs detected, and its mean minutes and outputs
/// since the onset, each with its standard error.
struct SprtDelays {
    found: f64,
    minutes: (f64, f64),
    outputs: (f64, f64),
}

fn sprt_delays(cases: &[Case], outcomes: &[Outcome]) -> SprtDelays {
    let mut minutes = Vec::new();
    let mut outputs = Vec::new();
    for (c, o) in cases.iter().zip(outcomes) {
        if let Some(p) = o.peers.first()
            && let Some(at) = p.fired_at
            && at >= c.change_at
        {
            minutes.push((at.0 - c.change_at.0) as f64 / 60_000.0);
            outputs.push(p.outputs);
        }
    }
    SprtDelays {
        found: minutes.len() as f64 / cases.len().max(1) as f64,
        minutes: (mean(&minutes), standard_error(&minutes)),
        outputs: (mean(&outputs), standard_error(&outputs)),
    }
}

fn standard_error(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    (var / v.len() as f64).sqrt()
}

/// One cell of the grid under each traffic shape: the delay should not
/// depend on whose traffic it is, beyond how much of it there is.
fn real_traffic_delays(plan: &Plan) -> anyhow::Result<()> {
    println!(
        "The cell ratio 2×, base rate 1%, share 10% under each traffic shape ({} runs each, real series played at their own speed from a random point):\n",
        plan.delay_runs
    );
    println!("| traffic | detected | mean candidate outputs | mean min | p90 min |");
    println!("|---|---:|---:|---:|---:|");
    for (label, series) in &plan.shapes {
        let cases: Vec<Case> = (0..plan.delay_runs)
            .map(|i| {
                let mut c = grid_case(1e-2, 0.1, 2.0, i);
                c.duration = Dur::from_mins(24 * 60);
                if let Some(v) = series {
                    c.shape = real_speed(v, label, c.duration, c.seed);
                }
                c
            })
            .collect();
        let outcomes = run_all(&cases, plan.threads, |_| Vec::new())?;
        let d = delays(&cases, &outcomes);
        println!(
            "| {label} | {:.0}% | {} | {} | {} |",
            d.detected * 100.0,
            fmt(d.mean_candidate),
            fmt(d.mean_minutes),
            fmt(d.p90_minutes)
        );
    }
    println!();
    Ok(())
}

fn grid_case(base: f64, share: f64, ratio: f64, i: usize) -> Case {
    let mut c = Case::new(Kind::RateRatio, 20_000 + i as u64);
    c.base_rate = base;
    c.share = share;
    c.effect = Some(ratio);
    c.outputs_per_s = GRID_RATE;
    c.duration = Dur::from_mins(GRID_HORIZON_HOURS * 60);
    c
}

fn print_peer_delays(rows: &[(f64, Vec<Case>, Vec<Outcome>)]) {
    let Some((_, _, first)) = rows.first() else {
        return;
    };
    let Some(o) = first.first() else {
        return;
    };
    println!(
        "\nPeers on the same streams (base rate 1%, share 50%): share detected and mean minutes to detect.\n"
    );
    let names: Vec<&str> = o.peers.iter().skip(1).map(|p| p.name.as_str()).collect();
    println!("| ratio | ripcord | {} |", names.join(" | "));
    println!("|---:|---:|{}", "---:|".repeat(names.len()));
    for (ratio, cases, outcomes) in rows {
        let d = delays(cases, outcomes);
        let mut cells = vec![format!(
            "{:.0}%, {}",
            d.detected * 100.0,
            fmt(d.mean_minutes)
        )];
        for j in 1..=names.len() {
            let (share, minutes, _) = peer_delay(cases, outcomes, j);
            cells.push(format!("{:.0}%, {}", share * 100.0, fmt(minutes)));
        }
        println!("| {ratio}× | {} |", cells.join(" | "));
    }
    println!();
}

fn other_delays(plan: &Plan) -> anyhow::Result<()> {
    println!("## Detection delay: scores, latency, drift, fairness\n");
    println!(
        "Share 50%, diurnal traffic, the change from 30 min in, {} runs each; delays count from the change.\n",
        plan.delay_runs
    );
    println!(
        "| criterion kind | change | traffic | detected | mean candidate outputs | p90 candidate outputs | mean min | p90 min |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let grid: [(Kind, f64, &str, f64); 8] = [
        (Kind::Score, -0.05, "mean −0.05", 20.0),
        (Kind::Score, -0.1, "mean −0.10", 20.0),
        (Kind::Latency, 1.3, "latency ×1.3", 20.0),
        (Kind::Latency, 1.6, "latency ×1.6", 20.0),
        (Kind::Drift, 0.1, "10% of the mix to one topic", 20.0),
        (Kind::Drift, 0.25, "25% of the mix to one topic", 20.0),
        (
            Kind::Fairness,
            3.0,
            "rate ×3 in one locale (25% of traffic)",
            200.0,
        ),
        (
            Kind::Fairness,
            5.0,
            "rate ×5 in one locale (25% of traffic)",
            200.0,
        ),
    ];
    for (kind, effect, label, rate) in grid {
        let cases: Vec<Case> = (0..plan.delay_runs)
            .map(|i| {
                let mut c = Case::new(kind, 30_000 + i as u64);
                c.effect = Some(effect);
                c.change_at = Dur::from_mins(30);
                c.duration = Dur::from_mins(if kind == Kind::Fairness {
                    24 * 60
                } else {
                    6 * 60
                });
                c.outputs_per_s = rate;
                c
            })
            .collect();
        let outcomes = run_all(&cases, plan.threads, |_| Vec::new())?;
        let d = delays(&cases, &outcomes);
        println!(
            "| {} | {label} | {rate}/s | {:.0}% | {} | {} | {} | {} |",
            kind.name(),
            d.detected * 100.0,
            fmt(d.mean_candidate),
            fmt(d.p90_candidate),
            fmt(d.mean_minutes),
            fmt(d.p90_minutes)
        );
        eprintln!("{label} done");
    }
    println!();
    Ok(())
}

fn change_delays(plan: &Plan) -> anyhow::Result<()> {
    println!("## Change after promotion: CUSUM against the level at promotion\n");
    println!(
        "Ramp at 50% for 2 h, automatic promotion, then the rate changes 1 h later; `false_alarm_every: 30d`, \
         {} runs each. The limit is CUSUM's delay (ln(ARL·I₀) − 1)/I₁ with the true rates and the ARL \
         in outputs; Lorden's ln(ARL)/I₁ for comparison.\n",
        plan.delay_runs
    );
    println!(
        "| base rate | change | traffic | detected | mean outputs | mean min | p90 min | CUSUM limit (outputs) | ripcord / limit | Lorden (outputs) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &base in &[1e-3, 1e-2] {
        for &ratio in &[1.5, 2.0, 3.0] {
            let cases: Vec<Case> = (0..plan.delay_runs)
                .map(|i| {
                    let mut c = Case::new(Kind::Change, 40_000 + i as u64);
                    c.base_rate = base;
                    c.effect = Some(ratio);
                    c.outputs_per_s = 50.0;
                    c.change_at = RAMP + Dur::from_mins(60);
                    c.duration = RAMP + Dur::from_mins(3 * 24 * 60);
                    c
                })
                .collect();
            let outcomes = run_all(&cases, plan.threads, |_| Vec::new())?;
            let d = delays(&cases, &outcomes);
            let arl = 30.0 * 86_400.0 * 50.0;
            let limit = cusum_delay_outputs(base, base * ratio, arl);
            let lorden = lorden_delay_outputs(base, base * ratio, arl);
            println!(
                "| {base} | ×{ratio} | 50/s | {:.0}% | {} | {} | {} | {} | {} | {} |",
                d.detected * 100.0,
                fmt(d.mean_outputs),
                fmt(d.mean_minutes),
                fmt(d.p90_minutes),
                fmt(limit),
                fmt(d.mean_outputs / limit),
                fmt(lorden)
            );
            eprintln!("change {base} ×{ratio} done");
        }
    }
    println!();
    Ok(())
}

/// Three significant digits, no exponent below a billion.
fn fmt(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let a = x.abs();
    if a >= 1e9 {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{}", x.round() as i64)
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}
