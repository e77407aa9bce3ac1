//! The drill file: what a tabletop exercise runs — the release, the
//! simulated traffic with its scripted regression, how long it may take,
//! what counts as detected in time, and (for an unattended drill) the
//! people's steps, each at a delay after the page.
//!
//! ```yaml
//! drill: moderation-spike
//! service: support-bot
//! baseline: v12
//! candidate: v13
//! traffic:
//!   rate: 20/s
//!   users: 2000
//!   seed: 7
//!   regressions: ["moderation_fail x4 from 2m"]
//! timeout: 45m
//! expect: {detect_within: 5m}
//! script:
//!   - {after: 2m, do: acknowledge, by: dana}
//!   - {after: 6m, do: step, step: integrity, by: sam}
//!   - {after: 20m, do: resolve, by: dana, note: drill over}
//! ```

use std::collections::BTreeMap;

use ripcord_core::Dur;
use ripcord_core::policy::units::parse_duration;
use ripcord_sim::spec::{Regression, rate_per_second};
use serde::{Deserialize, Serialize};

/// The largest drill file accepted.
pub const MAX_BYTES: usize = 64 * 1024;
/// The longest a drill may run.
const MAX_TIMEOUT: Dur = Dur(24 * 3_600_000);
/// Simulated events per second at most: the drill shares the server with
/// real traffic.
const MAX_RATE: f64 = 1_000.0;
const MAX_USERS: u32 = 1_000_000;
const MAX_SCRIPT: usize = 100;
const MAX_TEXT: usize = 2_000;

/// A drill file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DrillFile {
    /// The exercise's name.
    pub drill: String,
    pub service: String,
    pub baseline: String,
    pub candidate: String,
    #[serde(default)]
    pub traffic: Traffic,
    /// From the start; at the timeout the drill is scored as it stands.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub expect: Expect,
    /// People's steps, for a drill that runs unattended; without them
    /// people act through the API, the dashboard or the CLI.
    #[serde(default)]
    pub script: Vec<Scripted>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Mean events per second, e.g. `20/s`.
    #[serde(default = "default_rate")]
    pub rate: String,
    #[serde(default = "default_users")]
    pub users: u32,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// In the simulator's words, from the drill's start:
    /// `moderation_fail x4 from 2m`.
    #[serde(default)]
    pub regressions: Vec<String>,
    /// Base rates replacing the scenario's, by signal field.
    #[serde(default)]
    pub base_rates: BTreeMap<String, f64>,
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic {
            rate: default_rate(),
            users: default_users(),
            seed: default_seed(),
            regressions: Vec::new(),
            base_rates: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The incident must open within this of the first regression's start.
    #[serde(default)]
    pub detect_within: Option<String>,
}

/// One person's step, `after` the incident opened (the page).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scripted {
    pub after: String,
    #[serde(rename = "do")]
    pub act: Act,
    /// Who does it: a person's name, for the timeline and separation of
    /// duties.
    pub by: String,
    /// The playbook step, for `do: step`.
    #[serde(default)]
    pub step: Option<String>,
    /// A status update's message, for `do: status`.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// What a scripted person does.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    Acknowledge,
    Status,
    Step,
    Approve,
    Reject,
    Mitigate,
    Resolve,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Acknowledge => "acknowledge",
            Act::Status => "status",
            Act::Step => "step",
            Act::Approve => "approve",
            Act::Reject => "reject",
            Act::Mitigate => "mitigate",
            Act::Resolve => "resolve",
        }
    }
}

fn default_timeout() -> String {
    "1h".into()
}
fn default_rate() -> String {
    "20/s".into()
}
fn default_users() -> u32 {
    2_000
}
fn default_seed() -> u64 {
    1
}

/// A drill file checked: the durations and rates as numbers.
#[derive(Clone, Debug)]
pub struct Drill {
    pub file: DrillFile,
    pub timeout: Dur,
    pub rate: f64,
    pub regressions: Vec<Regression>,
    pub detect_within: Option<Dur>,
    /// Each scripted step's delay after the page.
    pub delays: Vec<Dur>,
}

/// Reads and checks a drill file. A mistake names its field, and the
/// parser's, its line and column.
pub fn parse(text: &str) -> Result<Drill, String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "the drill file is {} bytes; at most {MAX_BYTES}",
            text.len()
        ));
    }
    let file: DrillFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    check(file)
}

fn duration(field: &str, text: &str) -> Result<Dur, String> {
    let d = parse_duration(text).map_err(|e| format!("{field}: {e}"))?;
    if d < Dur::ZERO || d > MAX_TIMEOUT {
        return Err(format!("{field}: {text} is outside 0s–24h"));
    }
    Ok(d)
}

fn check(file: DrillFile) -> Result<Drill, String> {
    for (field, text) in [
        ("drill", &file.drill),
        ("service", &file.service),
        ("baseline", &file.baseline),
        ("candidate", &file.candidate),
    ] {
        if text.trim().is_empty() || text.len() > 200 {
            return Err(format!("{field}: must be 1–200 characters"));
        }
    }
    if file.baseline == file.candidate {
        return Err("candidate: must differ from baseline".into());
    }
    let timeout = duration("timeout", &file.timeout)?;
    if timeout < Dur::from_secs(10) {
        return Err("timeout: at least 10s".into());
    }
    let rate = rate_per_second(&file.traffic.rate).map_err(|e| format!("traffic.rate: {e}"))?;
    if !(rate > 0.0 && rate <= MAX_RATE) {
        return Err(format!(
            "traffic.rate: {} is outside (0, {MAX_RATE}/s]",
            file.traffic.rate
        ));
    }
    if file.traffic.users == 0 || file.traffic.users > MAX_USERS {
        return Err(format!("traffic.users: must be 1–{MAX_USERS}"));
    }
    for (field, r) in &file.traffic.base_rates {
        if !(r.is_finite() && (0.0..=1.0).contains(r)) {
            return Err(format!("traffic.base_rates.{field}: {r} is not in [0, 1]"));
        }
    }
    let regressions = file
        .traffic
        .regressions
        .iter()
        .enumerate()
        .map(|(i, r)| Regression::parse(r).map_err(|e| format!("traffic.regressions[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let detect_within = match &file.expect.detect_within {
        Some(t) => Some(duration("expect.detect_within", t)?),
        None => None,
    };
    if detect_within.is_some() && regressions.is_empty() {
        return Err("expect.detect_within: the traffic has no regression to detect".into());
    }
    let delays = check_script(&file.script)?;
    Ok(Drill {
        file,
        timeout,
        rate,
        regressions,
        detect_within,
        delays,
    })
}

fn check_script(script: &[Scripted]) -> Result<Vec<Dur>, String> {
    if script.len() > MAX_SCRIPT {
        return Err(format!("script: at most {MAX_SCRIPT} steps"));
    }
    let mut delays = Vec::new();
    for (i, s) in script.iter().enumerate() {
        let at = |field: &str| format!("script[{i}].{field}");
        delays.push(duration(&at("after"), &s.after)?);
        if s.by.trim().is_empty() || s.by.len() > 100 {
            return Err(format!("{}: must be 1–100 characters", at("by")));
        }
        let texts = [&s.step, &s.message, &s.note];
        if texts
            .iter()
            .any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_TEXT))
        {
            return Err(format!("script[{i}]: a text is over {MAX_TEXT} characters"));
        }
        match (s.act, &s.step, &s.message) {
            (Act::Step, None, _) => return Err(format!("{}: `do: step` names it", at("step"))),
            (Act::Status, _, None) => {
                return Err(format!("{}: `do: status` needs one", at("message")));
            }
            (a, Some(_), _) if a != Act::Step => {
                return Err(format!("{}: only `do: step` names a step", at("step")));
            }
            _ => {}
        }
    }
    Ok(delays)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
drill: moderation-spike
service: svc
baseline: v1
candidate: v2
traffic: {rate: 20/s, regressions: [\"moderation_fail x4 from 2m\"]}
timeout: 45m
expect: {detect_within: 5m}
script:
  - {after: 2m, do: acknowledge, by: dana}
  - {after: 6m, do: step, step: integrity, by: sam}
";

    #[test]
    fn a_drill_file_is_read_with_its_durations() {
        let d = parse(GOOD).unwrap();
        assert_eq!(d.timeout, Dur::from_mins(45));
        assert_eq!(d.rate, 20.0);
        assert_eq!(d.detect_within, Some(Dur::from_mins(5)));
        assert_eq!(d.delays, vec![Dur::from_mins(2), Dur::from_mins(6)]);
        assert_eq!(d.file.script[1].act, Act::Step);
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            (GOOD.replace("timeout: 45m", "timeout: 45x"), "timeout:"),
            (GOOD.replace("20/s", "20/fortnight"), "traffic.rate:"),
            (
                GOOD.replace("x4 from 2m", "x4 frm 2m"),
                "traffic.regressions[0]:",
            ),
            (GOOD.replace("step: integrity, ", ""), "script[1].step:"),
            (GOOD.replace("after: 6m", "after: 2d"), "script[1].after:"),
            (GOOD.replace("candidate: v2", "candidate: v1"), "candidate:"),
        ];
        for (text, field) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.starts_with(field), "{field}: {e}");
        }
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_line() {
        let e = parse(&GOOD.replace("timeout: 45m", "timout: 45m")).unwrap_err();
        assert!(e.contains("timout") && e.contains("line 6"), "{e}");
        let e = parse(&GOOD.replace("do: acknowledge", "do: acknowlege")).unwrap_err();
        assert!(e.contains("acknowlege") && e.contains("line 9"), "{e}");
    }
}
