//! `ripcord report INCIDENT`: the post-incident report as markdown or HTML.
//!
//! The incident and its release come from the store (or `--incident-file`,
//! an [`IncidentReport`] as JSON), the release's decision lines from the
//! store (or `--decisions`). Markdown charts are written as SVG files
//! beside the report or into `--charts-dir`, never into the working
//! directory by default (a report on standard output with no
//! `--charts-dir` writes no chart files); HTML inlines them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use ripcord_core::whatif::Table;
use ripcord_govern::IncidentReport;
use serde_json::Value;

use crate::cmd::serve::{config_path, read_config};
use crate::cmd::store::{StoreArg, open_existing};
use ripcord_server::report::regulatory::{
    Gathered, Narrative, RegulatoryReport, build, filed, markdown, sources,
};
use ripcord_server::report::source::{load_incident, load_whatif, of_release, release_decisions};
use ripcord_server::report::{Chart, Format, Input, render};

#[derive(Args)]
pub struct ReportArgs {
    /// The incident id.
    incident: String,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    format: ReportFormat,
    /// The server's data dir.
    #[arg(long, default_value = "ripcord-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    store: StoreArg,
    /// Where to write [default: standard output].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Where a markdown report's SVG charts go [default: beside --output;
    /// none are written when the report goes to standard output].
    #[arg(long)]
    charts_dir: Option<PathBuf>,
    /// Read the incident from this JSON file instead of the store:
    /// `{"incident": <the stored incident>, "release": {"id", "baseline",
    /// "candidate", "share"}}`.
    #[arg(long)]
    incident_file: Option<PathBuf>,
    /// Read the release's decisions from this NDJSON file instead of the store.
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// The what-if counts false alarms on the service's releases of this
    /// many days before the incident.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// With `--format regulatory`: the `ripcord.yaml` whose `regulatory:`
    /// names the provider and the systems, for a report not yet filed
    /// [default: ./ripcord.yaml if it exists].
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Md,
    Html,
    /// The regulatory incident report (EU AI Act Article 73 by default):
    /// the latest one filed, else a draft from the record; markdown with
    /// its JSON, or `--output X.md` and `X.json`.
    Regulatory,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let format = match args.format {
        ReportFormat::Md => Format::Markdown,
        ReportFormat::Html => Format::Html,
        ReportFormat::Regulatory => {
            let report = runtime.block_on(regulatory(&args))?;
            write_regulatory(&report, args.output.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (doc, decisions, whatif) = runtime.block_on(gather(&args))?;
    let prefix = args
        .output
        .as_deref()
        .and_then(Path::file_stem)
        .map_or_else(
            || args.incident.clone(),
            |s| s.to_string_lossy().to_string(),
        );
    let input = Input {
        doc: &doc,
        decisions: &decisions,
        whatif: whatif.as_ref(),
    };
    let rendered = render(&input, format, &prefix)?;
    if format == Format::Markdown {
        write_charts(&rendered.charts, charts_dir(&args).as_deref())?;
    }
    match &args.output {
        Some(path) => std::fs::write(path, &rendered.text)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout().write_all(rendered.text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `--charts-dir`, else the output file's folder; none for standard output.
fn charts_dir(args: &ReportArgs) -> Option<PathBuf> {
    let beside_output = || {
        let output = args.output.as_deref()?;
        Some(output.parent().unwrap_or(Path::new("")).to_path_buf())
    };
    args.charts_dir.clone().or_else(beside_output)
}

fn write_charts(charts: &[Chart], dir: Option<&Path>) -> anyhow::Result<()> {
    let Some(dir) = dir else {
        if !charts.is_empty() {
            eprintln!(
                "ripcord: the report links {} chart(s) not written: give --output or --charts-dir",
                charts.len()
            );
        }
        return Ok(());
    };
    for chart in charts {
        let path = dir.join(&chart.file);
        std::fs::write(&path, &chart.svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The latest regulatory report filed for the incident, else a draft
/// assembled from the record (and `--incident-file`, `--decisions`).
async fn regulatory(args: &ReportArgs) -> anyhow::Result<RegulatoryReport> {
    let file = read_config(args.config.as_deref())?;
    let origin = config_path(args.config.as_deref())
        .map_or_else(|| "ripcord.yaml".to_string(), |p| p.display().to_string());
    let regulation = file.regulatory.lower(&origin)?;
    let gathered = match &args.incident_file {
        Some(path) => {
            let doc = read_incident(path)?;
            let decisions = match &args.decisions {
                Some(d) => decisions_file(d, &doc)?,
                None => Vec::new(),
            };
            Gathered {
                doc,
                decisions,
                versions: Vec::new(),
                exposure: None,
            }
        }
        None => {
            let store = open_existing(&args.store.spec(&args.data_dir)).await?;
            let doc = load_incident(&store, &args.incident).await?;
            if let Some(latest) = filed(&store, &doc.incident).await?.pop() {
                return Ok(latest);
            }
            let mut gathered = sources(&store, doc.incident).await?;
            if let Some(d) = &args.decisions {
                gathered.decisions = decisions_file(d, &gathered.doc)?;
            }
            gathered
        }
    };
    let src = gathered.sources(&regulation);
    Ok(build(&src, &Narrative::default(), None))
}

/// Markdown and JSON: to `--output` and the same name with `.json`, or
/// both on standard output (the JSON in a fenced block at the end).
fn write_regulatory(report: &RegulatoryReport, output: Option<&Path>) -> anyhow::Result<()> {
    let md = markdown(report);
    let json = serde_json::to_string_pretty(report)?;
    match output {
        Some(path) => {
            std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
            let json_path = path.with_extension("json");
            if json_path == path {
                bail!(
                    "--output {}: the JSON would overwrite the markdown; name it .md",
                    path.display()
                );
            }
            std::fs::write(&json_path, json + "\n")
                .with_context(|| format!("writing {}", json_path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            write!(
                out,
                "{md}\n## Machine-readable form\n\n```json\n{json}\n```\n"
            )?;
        }
    }
    Ok(())
}

async fn gather(args: &ReportArgs) -> anyhow::Result<(IncidentReport, Vec<String>, Option<Table>)> {
    let store = if args.incident_file.is_none() || args.decisions.is_none() {
        Some(open_existing(&args.store.spec(&args.data_dir)).await?)
    } else {
        None
    };
    let doc = match (&args.incident_file, &store) {
        (Some(path), _) => read_incident(path)?,
        (None, Some(store)) => load_incident(store, &args.incident).await?,
        (None, None) => bail!("no incident document"),
    };
    let decisions = match (&args.decisions, &store) {
        (Some(path), _) => decisions_file(path, &doc)?,
        (None, Some(store)) => release_decisions(store, &doc).await?,
        (None, None) => Vec::new(),
    };
    let whatif = match &store {
        Some(store) => load_whatif(store, &doc, args.days).await?,
        None => None,
    };
    Ok((doc, decisions, whatif))
}

/// `--incident-file`: an [`IncidentReport`] as JSON; a field that does not
/// fit is named by its path.
fn read_incident(path: &Path) -> anyhow::Result<IncidentReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    serde_path_to_error::deserialize(doc)
        .map_err(|e| anyhow::anyhow!("incident document: {}: {}", e.path(), e.inner()))
}

/// The incident's release's lines of a decision log file; a line that is
/// not JSON is an error naming it.
fn decisions_file(path: &Path, doc: &IncidentReport) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON decision", path.display(), n + 1))?;
        if of_release(&record, doc) {
            lines.push(line.to_string());
        }
    }
    Ok(lines)
}
