//! `ripcord replay`: the engine over a recorded stream, decisions out.
//!
//! Exit codes: 0 done, 1 invalid policy or input line, 2 other errors (a file
//! that cannot be read), 3 a decision matched `--fail-on`.

use std::io::{BufRead, BufWriter, IsTerminal, Read as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};
use ripcord_core::engine::{Engine, EngineOptions, Rejection, ShareSource, pct, state_name};
use ripcord_core::ndjson::{Line, LineError, parse_line};
use ripcord_core::policy::units::parse_duration;
use ripcord_core::{ActionKind, Decision, Release, Time};

use crate::input::open_events;
use crate::output::{write_ndjson, write_text};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// NDJSON events (`-` for stdin; gzip is detected).
    #[arg(long)]
    events: PathBuf,
    /// `text`: a readable timeline with a summary; `ndjson`: one JSON object per decision.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit with code 3 when such a decision happens.
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
    /// Declare the release here instead of (or before) a release line.
    #[arg(long, requires_all = ["candidate", "share"])]
    baseline: Option<String>,
    /// The candidate version, with --baseline and --share.
    #[arg(long, requires_all = ["baseline", "share"])]
    candidate: Option<String>,
    /// The candidate's share of units, in (0, 1].
    #[arg(long, requires_all = ["baseline", "candidate"])]
    share: Option<f64>,
    /// How late an event may arrive behind the newest one.
    #[arg(long, default_value = "30s")]
    lateness: String,
    /// Go on past malformed lines and count them, instead of stopping.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Ndjson,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FailOn {
    Rollback,
    Pause,
    Any,
}

impl FailOn {
    fn matches(self, d: &Decision) -> bool {
        let rollback = matches!(
            d.action,
            Some(ActionKind::RollbackStage | ActionKind::RollbackComplete)
        );
        let pause = matches!(
            d.action,
            Some(ActionKind::Pause | ActionKind::PauseAndInvestigate)
        );
        match self {
            FailOn::Rollback => rollback,
            FailOn::Pause => pause,
            FailOn::Any => rollback || pause,
        }
    }
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    lines: u64,
    events: u64,
    used: u64,
    releases: u64,
    other_service: u64,
    no_release: u64,
    unknown_version: u64,
    too_late: u64,
    invalid: u64,
    first_invalid: Vec<String>,
    decisions: Vec<(&'static str, u64)>,
    matched: bool,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let policy = match super::policy::load(&args.policy)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let lateness = parse_duration(&args.lateness).map_err(|e| anyhow!("--lateness: {e}"))?;
    if let Some(s) = args.share
        && !(s > 0.0 && s <= 1.0)
    {
        return Err(anyhow!("--share must be in (0, 1], got {s}"));
    }
    let service = policy.service.clone();
    let mut engine = Engine::new(
        policy,
        EngineOptions {
            lateness,
            share_source: ShareSource::Recorded,
            ..EngineOptions::default()
        },
    );
    let input = open_events(&args.events)?;
    let progress = progress_bar(input.size);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut cli_release = match (&args.baseline, &args.candidate, args.share) {
        (Some(b), Some(c), Some(s)) => Some((b.clone(), c.clone(), s)),
        _ => None,
    };
    let mut tally = Tally::default();
    let mut decisions = Vec::new();
    let mut start: Option<Time> = None;
    let mut reader = input.reader;
    let mut line = Vec::with_capacity(1024);
    let mut read_bytes = 0u64;
    let began = Instant::now();
    loop {
        let (n, too_long) = match read_line(&mut reader, &mut line)? {
            Read::End => break,
            Read::Line(n) => (n, false),
            Read::TooLong(n) => (n, true),
        };
        read_bytes += n as u64;
        tally.lines += 1;
        if tally.lines % 65_536 == 0 {
            progress.set_position(read_bytes);
        }
        let parsed = if too_long {
            Err(LineError {
                field: String::new(),
                message: format!("longer than {} MiB; skipped unread", MAX_LINE >> 20),
            })
        } else {
            parse_line(&line)
        };
        match parsed {
            Ok(Line::Blank) => {}
            Ok(Line::Release(r)) => {
                tally.releases += 1;
                engine.declare(&r, &mut decisions);
            }
            Ok(Line::Event(ev)) => {
                tally.events += 1;
                if let Some((baseline, candidate, share)) = cli_release.take() {
                    let release = Release {
                        ts: ev.ts,
                        service: service.clone(),
                        baseline,
                        candidate,
                        share,
                    };
                    engine.declare(&release, &mut decisions);
                }
                match engine.observe(&ev, &mut decisions) {
                    Ok(()) => tally.used += 1,
                    Err(Rejection::OtherService) => tally.other_service += 1,
                    Err(Rejection::NoRelease) => tally.no_release += 1,
                    Err(Rejection::UnknownVersion) => tally.unknown_version += 1,
                    Err(Rejection::TooLate) => tally.too_late += 1,
                }
            }
            Err(e) => {
                let message = format!("line {}: {e}", tally.lines);
                if !args.skip_invalid {
                    progress.finish_and_clear();
                    emit(&mut out, &mut decisions, &mut tally, &args, &mut start)?;
                    out.flush()?;
                    eprintln!("error: {message}");
                    eprintln!("(use --skip-invalid to go on past malformed lines)");
                    return Ok(ExitCode::from(1));
                }
                tally.invalid += 1;
                if tally.first_invalid.len() < 5 {
                    tally.first_invalid.push(message);
                }
            }
        }
        if !decisions.is_empty() {
            emit(&mut out, &mut decisions, &mut tally, &args, &mut start)?;
        }
    }
    let now = engine.now();
    engine.tick(now, &mut decisions);
    emit(&mut out, &mut decisions, &mut tally, &args, &mut start)?;
    progress.finish_and_clear();
    let elapsed = began.elapsed().as_secs_f64();
    match args.format {
        Format::Text => summary(&mut out, &tally, &engine, elapsed)?,
        Format::Ndjson => {
            out.flush()?;
            summary(&mut std::io::stderr(), &tally, &engine, elapsed)?;
        }
    }
    out.flush()?;
    Ok(if tally.matched {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// A line longer than this is refused without being held in memory.
const MAX_LINE: usize = 1 << 20;

enum Read {
    End,
    Line(usize),
    TooLong(usize),
}

/// Reads one line into `line` (cleared first), refusing to buffer more than
/// `MAX_LINE` bytes of it: the rest of an overlong line is skipped.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Read> {
    line.clear();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)?;
    if n == 0 {
        return Ok(Read::End);
    }
    if n <= MAX_LINE || line.last() == Some(&b'\n') {
        return Ok(Read::Line(n));
    }
    let mut skipped = n;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(Read::TooLong(skipped));
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(Read::TooLong(skipped + i + 1));
            }
            None => {
                let len = buf.len();
                reader.consume(len);
                skipped += len;
            }
        }
    }
}

fn emit(
    out: &mut impl Write,
    decisions: &mut Vec<Decision>,
    tally: &mut Tally,
    args: &ReplayArgs,
    start: &mut Option<Time>,
) -> anyhow::Result<()> {
    for d in decisions.drain(..) {
        if start.is_none() {
            *start = Some(d.at);
        }
        let name = d.action.map_or(d.kind.as_str(), |a| a.as_str());
        match tally.decisions.iter_mut().find(|(k, _)| *k == name) {
            Some((_, n)) => *n += 1,
            None => tally.decisions.push((name, 1)),
        }
        if args.fail_on.is_some_and(|f| f.matches(&d)) {
            tally.matched = true;
        }
        match args.format {
            Format::Text => write_text(out, &d, *start)?,
            Format::Ndjson => write_ndjson(out, &d)?,
        }
    }
    Ok(())
}

fn summary(w: &mut impl Write, t: &Tally, engine: &Engine, elapsed: f64) -> anyhow::Result<()> {
    writeln!(w)?;
    writeln!(w, "── summary ──")?;
    writeln!(
        w,
        "lines {}, events {} (used {}), release lines {}",
        t.lines, t.events, t.used, t.releases
    )?;
    let rejected = [
        ("for another service", t.other_service),
        ("before any release", t.no_release),
        ("for another version", t.unknown_version),
        ("later than the allowed lateness", t.too_late),
        ("malformed (skipped)", t.invalid),
    ];
    for (why, n) in rejected.iter().filter(|(_, n)| *n > 0) {
        writeln!(w, "  not counted: {n} {why}")?;
    }
    for m in &t.first_invalid {
        writeln!(w, "  {m}")?;
    }
    let by_kind: Vec<String> = t
        .decisions
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    writeln!(
        w,
        "decisions: {}",
        if by_kind.is_empty() {
            "none".into()
        } else {
            by_kind.join(", ")
        }
    )?;
    match engine.status() {
        Some(s) => writeln!(
            w,
            "release {}: {}, candidate share {}%",
            s.id,
            state_name(&s.state),
            pct(s.share)
        )?,
        None => writeln!(w, "no release was declared")?,
    }
    let rate = if elapsed > 0.0 {
        t.lines as f64 / elapsed
    } else {
        0.0
    };
    writeln!(w, "replayed in {elapsed:.2} s ({rate:.0} lines/s)")?;
    Ok(())
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    const SHOW_ABOVE: u64 = 8 << 20;
    match size {
        Some(bytes) if bytes > SHOW_ABOVE && std::io::stderr().is_terminal() => {
            let bar = ProgressBar::new(bytes);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}")
            {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    }
}
