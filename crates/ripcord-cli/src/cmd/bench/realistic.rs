//! `ripcord bench detect --only realistic`: false rollbacks of A/A releases
//! on traffic shaped like real traffic, per condition and criterion kind.
//! The idealised section splits outputs at exactly the assigned share; here
//! heavy-tailed users, ramps that rise and fall, late labels, feedback
//! denominators, moving baselines and recorded traffic each get a row.

use ripcord_core::Dur;
use ripcord_sim::detect::{Case, Condition, Kind, Outcome};

use super::{real_speed, run_all};

pub struct Plan<'a> {
    pub runs: usize,
    pub threads: usize,
    /// Traffic shapes; the recorded ones (with a series) get their own rows.
    pub shapes: &'a [(String, Option<Vec<f64>>)],
}

/// One row: a condition, a criterion kind and a volume.
struct Cell<'a> {
    label: String,
    condition: Condition,
    kind: Kind,
    outputs_per_s: f64,
    /// A recorded series to shape the volume, played at real speed.
    series: Option<(&'a str, &'a [f64])>,
}

/// How long the change kinds watch after the promotion.
const WATCH_AFTER: Dur = Dur::from_mins(4 * 60);
/// How long fixed-share conditions watch.
const FIXED_HOURS: i64 = 3;

pub fn false_rollbacks(plan: &Plan) -> anyhow::Result<()> {
    println!("## False rollbacks on realistic traffic: A/A releases by condition\n");
    println!(
        "{} A/A releases per row, confidence 0.95, bursts and 5% of events up to 5 min late unless the \
         condition says more; count buckets of 10 s (60 s of per-user events for `per: unit`). Heavy \
         users: 2,000 units with lognormal (σ 2) activity, assigned by the published hash at 5% of \
         units. Ramps: 5% → 25% → 50%, 30 min each, automatic promotion, the split following the \
         engine's share; kinds judged before promotion are watched until it. Change kinds watch {} h \
         after promotion with the policy's default 2% holdback (goal α); with `holdback: 0` they watch \
         by CUSUM (`false_alarm_every: 30d`, whose own share of alarms in that watch is \
         1 − e^(−{}h/30d)), which assumes the rate stays at its level: that row is outside the \
         guarantee. \"within noise\" means at most the 99th percentile of \
         Binomial(runs, goal). The absolute ceiling is at the candidate's highest true rate; it is not \
         run with per-user propensity, where the candidate's users can truly exceed it.\n",
        plan.runs,
        WATCH_AFTER.0 / 3_600_000,
        WATCH_AFTER.0 / 3_600_000,
    );
    println!(
        "| condition | criterion kind | volume | runs | watched per run | false rollbacks | rate | goal | goal met |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for cell in cells(plan) {
        let cases: Vec<Case> = (0..plan.runs).map(|i| case(&cell, i)).collect();
        let outcomes = run_all(&cases, plan.threads, |_| Vec::new())?;
        print_row(&cell, &cases, &outcomes);
        eprintln!("realistic {} / {} done", cell.label, cell.kind.name());
    }
    println!();
    Ok(())
}

fn cells<'a>(plan: &Plan<'a>) -> Vec<Cell<'a>> {
    let mut out = Vec::new();
    for condition in Condition::REALISTIC {
        push_kinds(&mut out, condition.name().to_string(), condition, None);
    }
    for (label, series) in plan.shapes {
        if let Some(values) = series {
            let name = format!("ramp on recorded traffic: {label}");
            let series = Some((label.as_str(), values.as_slice()));
            push_kinds(&mut out, name, Condition::Ramp, series);
        }
    }
    out
}

fn push_kinds<'a>(
    out: &mut Vec<Cell<'a>>,
    label: String,
    condition: Condition,
    series: Option<(&'a str, &'a [f64])>,
) {
    for kind in Kind::REALISTIC {
        if kind == Kind::RateAbsolute && condition == Condition::Propensity {
            continue;
        }
        // A holdback only changes what happens after the promotion.
        if condition == Condition::NonStationaryNoHoldback && !kind.is_change() {
            continue;
        }
        // 0.5 and 2 feedback/s at a tenth of outputs carrying feedback.
        let volumes: &[f64] = match kind {
            Kind::RateFeedback | Kind::ChangeFeedback => &[5.0, 20.0],
            Kind::Score | Kind::Latency | Kind::Drift => &[5.0],
            Kind::Fairness => &[50.0],
            _ => &[20.0],
        };
        for &outputs_per_s in volumes {
            out.push(Cell {
                label: label.clone(),
                condition,
                kind,
                outputs_per_s,
                series,
            });
        }
    }
}

fn case(cell: &Cell, i: usize) -> Case {
    let mut c = Case::new(cell.kind, 50_000 + i as u64);
    c.outputs_per_s = cell.outputs_per_s;
    c.bucket = Dur::from_secs(if cell.kind.is_per_unit() { 60 } else { 10 });
    cell.condition.apply(&mut c);
    let ramp = c.ramp_length();
    c.duration = if cell.kind.is_change() {
        ramp + WATCH_AFTER
    } else if c.steps.is_empty() {
        Dur::from_mins(FIXED_HOURS * 60)
    } else {
        // The run stops at the promotion; a bucket of margin lets it happen.
        ramp + c.bucket + c.bucket
    };
    if let Some((label, values)) = cell.series {
        c.shape = real_speed(values, label, c.duration, c.seed);
    }
    c
}

/// The share of A/A runs allowed to fire: α, plus, when a change kind
/// watches by CUSUM (`holdback: 0`), the chance of an alarm in the watch at
/// the policy's mean time between them.
fn goal(case: &Case) -> f64 {
    let alpha = 1.0 - case.confidence;
    if !case.kind.is_change() || case.holdback != Some(0.0) {
        return alpha;
    }
    let watched = WATCH_AFTER.0 as f64 / case.false_alarm_every.0 as f64;
    alpha + 1.0 - (-watched).exp()
}

fn print_row(cell: &Cell, cases: &[Case], outcomes: &[Outcome]) {
    let Some(first) = cases.first() else {
        return;
    };
    let runs = cases.len();
    let fired = outcomes.iter().filter(|o| o.fired_at.is_some()).count();
    let watched = outcomes.iter().map(|o| o.watched.0).sum::<i64>() as f64 / runs as f64;
    let rate = fired as f64 / runs as f64;
    let goal = goal(first);
    let verdict = if cell.condition == Condition::NonStationaryNoHoldback {
        "outside the guarantee".to_string()
    } else if rate <= goal {
        "yes".to_string()
    } else if fired <= binomial_p99(runs, goal) {
        "no (within noise)".to_string()
    } else {
        "**no**".to_string()
    };
    let volume = if cell.kind.is_feedback() {
        format!("{} feedback/s", cell.outputs_per_s * 0.1)
    } else {
        format!("{}/s", cell.outputs_per_s)
    };
    println!(
        "| {} | {} | {volume} | {runs} | {:.1} h | {fired} | {rate:.3} | {goal:.3} | {verdict} |",
        cell.label,
        cell.kind.name(),
        watched / 3_600_000.0,
    );
}

/// The 99th percentile of Binomial(n, p).
fn binomial_p99(n: usize, p: f64) -> usize {
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut cdf = pmf;
    for k in 0..n {
        if cdf >= 0.99 {
            return k;
        }
        pmf *= (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
        cdf += pmf;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_p99_matches_a_hand_computed_case() {
        // P(X ≤ 10) = 0.9744 and P(X ≤ 11) = 0.9905 for Binomial(30, 0.2).
        assert_eq!(binomial_p99(30, 0.2), 11);
    }
}
