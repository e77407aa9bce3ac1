//! Memory per criterion per live release: the engine's live heap after a
//! release of the conversational-agent example is fed single outputs from
//! distinct users, for each criterion alone and for the whole policy.
//! Counted by a global allocator that tracks live bytes. Prints its
//! figures.
//!
//! Then what the bounded unit set costs the SRM check when it is full:
//! releases of 4,000,000 users each seen once at a 5% share (the filter
//! forgets a quarter of new users by the end), assigned as declared and
//! with a tenth of the candidate's users lost.
//!
//! `cargo bench -p ripcord-core --bench memory` (set `RIPCORD_BENCH_EVENTS`
//! to change the count; default 1,000,000 events over an hour;
//! `RIPCORD_BENCH_RELEASES` the SRM releases per row, default 20).

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use ripcord_core::engine::{Engine, EngineOptions};
use ripcord_core::policy::{Policy, RolloutStep, SrmCheck, SrmCount, load_policy};
use ripcord_core::{ActionKind, Dur, Event, Release, Time};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const T0: Time = Time(1_795_000_000_000);

fn example() -> Policy {
    let yaml = include_str!("../../../examples/conversational-agent/policy.yaml");
    match load_policy(yaml, "example") {
        Ok(p) => p,
        Err(d) => panic!("the example does not load: {d}"),
    }
}

/// The example with only criterion `i` (and no triggers, no SRM), or the
/// whole example.
fn with_only(i: Option<usize>) -> Policy {
    let mut p = example();
    if let Some(i) = i {
        p.criteria = vec![p.criteria[i].clone()];
        p.triggers = Vec::new();
        p.srm.enabled = false;
    }
    p
}

/// Output `k` of an hour: user `k` (all distinct), 10% on the candidate.
fn output(k: usize, events: usize) -> Event<'static> {
    let ts = T0 + Dur((k as i64 * 3_600_000) / events as i64);
    let mix = (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let bit = |shift: u32, every: u64| f64::from(u8::from((mix >> shift).is_multiple_of(every)));
    Event {
        ts,
        service: Cow::Borrowed("support-bot"),
        version: Cow::Borrowed(if k.is_multiple_of(10) { "v13" } else { "v12" }),
        unit: Cow::Owned(format!("user-{k}")),
        segment: vec![(
            Cow::Borrowed("locale"),
            Cow::Borrowed(if k.is_multiple_of(4) { "de" } else { "en" }),
        )],
        values: vec![
            (Cow::Borrowed("outputs"), 1.0),
            (Cow::Borrowed("moderation_fail"), bit(3, 100)),
            (Cow::Borrowed("hallucination"), bit(9, 2000)),
            (Cow::Borrowed("error"), bit(17, 200)),
            (Cow::Borrowed("latency_ms"), 300.0 + (mix % 1500) as f64),
            (Cow::Borrowed("utility"), 0.6 + (mix % 400) as f64 / 1000.0),
            (Cow::Borrowed("feedback"), bit(23, 5)),
            (Cow::Borrowed("thumbs_down"), bit(29, 50)),
        ],
    }
}

/// Live heap of a started engine, then after `events` outputs (and a tick
/// each simulated second), in KiB.
fn measure(policy: Policy, events: usize) -> (f64, f64) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut engine = Engine::new(policy, EngineOptions::default());
    let mut out = Vec::new();
    let release = Release {
        ts: T0,
        service: "support-bot".into(),
        baseline: "v12".into(),
        candidate: "v13".into(),
        share: 0.1,
    };
    engine.declare(&release, &mut out);
    let started = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let mut second = 0;
    for k in 0..events {
        let e = output(k, events);
        let _ = engine.observe(&e, &mut out);
        if e.ts.0 / 1000 != second {
            second = e.ts.0 / 1000;
            engine.tick(e.ts, &mut out);
        }
        out.clear();
    }
    let fed = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    drop(engine);
    (started as f64 / 1024.0, fed as f64 / 1024.0)
}

fn main() {
    let events: usize = std::env::var("RIPCORD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let policy = example();
    println!("Engine live heap, {events} outputs from distinct users over an hour, 10% candidate:");
    println!();
    println!("| criterion | kind | started KiB | after the hour KiB |");
    println!("|---|---|---|---|");
    for (i, c) in policy.criteria.iter().enumerate() {
        let (started, fed) = measure(with_only(Some(i)), events);
        let per = format!("{:?}", c.per).to_lowercase();
        println!(
            "| {} | {:?}, per {per} | {started:.0} | {fed:.0} |",
            c.name, c.bound
        );
    }
    let (started, fed) = measure(with_only(None), events);
    println!("| the whole policy (with triggers and SRM on units) | | {started:.0} | {fed:.0} |");
    let releases: u64 = std::env::var("RIPCORD_BENCH_RELEASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!();
    println!(
        "SRM on units with the unit set saturated: {releases} releases per row of 4,000,000 users at 5%:"
    );
    println!();
    println!("| assignment | releases halted |");
    println!("|---|---|");
    for (what, lost) in [
        ("as declared", 0),
        ("a tenth of the candidate's users lost", 10),
    ] {
        let halted = (0..releases).filter(|&r| srm_halts(r, lost)).count();
        println!("| {what} | {halted} of {releases} |");
    }
}

/// One release of 4M users each seen once, assigned by the published
/// formula under salt `release`; `lost_per_100` of the candidate's users
/// never reach the engine. Whether the SRM check halted it.
fn srm_halts(release: u64, lost_per_100: u64) -> bool {
    let mut p = with_only(Some(0));
    // Held at 5% for the whole release: the users are assigned at 5%.
    p.rollout.steps = vec![RolloutStep {
        share: 0.05,
        hold: Dur::from_mins(10_000),
    }];
    p.srm = SrmCheck {
        count: SrmCount::Units,
        ..SrmCheck::default()
    };
    let mut engine = Engine::new(p, EngineOptions::default());
    let mut out = Vec::new();
    let start = Release {
        ts: T0,
        service: "support-bot".into(),
        baseline: "v12".into(),
        candidate: "v13".into(),
        share: 0.05,
    };
    engine.declare(&start, &mut out);
    let salt = format!("support-bot-{release}");
    for u in 0..4_000_000u64 {
        let unit = format!("user-{u}");
        let candidate = ripcord_core::assign::is_candidate(&salt, &unit, 0.05);
        if candidate && u % 100 < lost_per_100 {
            continue;
        }
        let mut e = output(u as usize, 4_000_000);
        e.version = Cow::Borrowed(if candidate { "v13" } else { "v12" });
        e.unit = Cow::Owned(unit);
        let _ = engine.observe(&e, &mut out);
    }
    out.iter().any(|d| d.action == Some(ActionKind::Pause))
}
