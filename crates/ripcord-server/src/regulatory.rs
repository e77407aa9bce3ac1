//! Regulatory reporting on the live service: classifying an incident
//! (class, awareness, affected people and harm), filing its reports
//! (initial, updates, final) as kept and audited documents, and the
//! reporting-deadline timers. The machine (`ripcord_govern::regulatory`)
//! decides; here the incident and its sources are read from the store and
//! what changed is written in one batch.

use std::sync::LazyLock;

use ripcord_core::Time;
use ripcord_core::audit::canonical_json;
use ripcord_govern::record::Incident;
use ripcord_govern::regulatory::{self, REGULATORY_REPORT};
use ripcord_govern::{Classify, Filed, ReportStage};
use ripcord_store::{Batch, Doc};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::{Hub, Service, State, audit, govern};
use crate::incidents::active_or;
use crate::report::regulatory::{
    Filing, Narrative, Regulation, RegulatoryReport, build, filed, sources,
};
use crate::writer::Durable;

static DEFAULT: LazyLock<Regulation> = LazyLock::new(Regulation::default);

/// What a person says classifying an incident.
pub struct ClassifyAsk {
    pub class: String,
    /// RFC 3339; the incident's opening (or what was recorded) when absent.
    pub aware_at: Option<String>,
    pub affected: Option<u64>,
    pub harm: Option<String>,
}

impl Hub {
    /// The server's regulatory configuration (the EU AI Act's classes
    /// until the config says otherwise).
    pub fn regulation(&self) -> &Regulation {
        self.regulation.get().unwrap_or(&DEFAULT)
    }

    /// Records the incident's class and awareness and schedules its
    /// reporting deadline.
    pub async fn classify(
        &self,
        id: &str,
        ask: ClassifyAsk,
        p: &Principal,
    ) -> Result<(Incident, Durable), ApiError> {
        let stored = self.incident(id).await?;
        p.require_service(&stored.service)?;
        let service = self.known(&stored.service)?;
        let regulation = self.regulation();
        let class = regulation
            .classes
            .class(&ask.class)
            .map_err(govern::refusal)?;
        let aware_at = match &ask.aware_at {
            Some(text) => Some(Time::parse_rfc3339(text).ok_or_else(|| {
                ApiError::bad_request(format!("aware_at: \"{text}\" is not an RFC 3339 time"))
            })?),
            None => None,
        };
        let mut state = service.state.lock().await;
        let mut inc = active_or(&state, stored);
        let now = self.now();
        let ctx = self.ctx(&service.name, now);
        let mut batch = Batch::default();
        let c = Classify {
            class,
            framework: &regulation.classes.framework,
            aware_at,
            affected: ask.affected,
            harm: ask.harm,
        };
        govern::drive(&ctx, govern::on(&state), &mut batch, |s, fx| {
            regulatory::classify(s, &mut inc, c, p.person(), fx)
        })
        .map_err(govern::refusal)?;
        state.gov.store_active(&inc);
        govern::save_incident(&mut batch, &inc, now, &p.name, "incident.classify");
        Ok((inc, self.writer.submit(batch).await))
    }

    /// Files a regulatory report of `stage`: assembled from the record and
    /// `narrative`, kept as a document, audited with its SHA-256, and
    /// listed on the incident. The first report meets the deadline.
    pub async fn file_report(
        &self,
        id: &str,
        stage: ReportStage,
        narrative: Narrative,
        p: &Principal,
    ) -> Result<(RegulatoryReport, Durable), ApiError> {
        narrative.check().map_err(ApiError::bad_request)?;
        if stage == ReportStage::Final && narrative.causal_analysis.is_none() {
            return Err(ApiError::bad_request(
                "causal_analysis: the final report needs the causal analysis people wrote",
            ));
        }
        let stored = self.incident(id).await?;
        p.require_service(&stored.service)?;
        let service = self.known(&stored.service)?;
        let mut state = service.state.lock().await;
        let mut inc = active_or(&state, stored);
        let number = regulatory::may_file(&inc, stage).map_err(govern::refusal)?;
        let now = self.now();
        let report = self
            .assemble(&inc, &narrative, Some((stage, number, now, p)))
            .await?;
        let value = ripcord_core::json::value(&report);
        let digest: [u8; 32] = Sha256::digest(canonical_json(&value).as_bytes()).into();
        let sha256 = ripcord_core::audit::hex(&digest);
        let entry = Filed {
            id: report.id.clone(),
            stage,
            filed_at: now.to_rfc3339(),
            filed_by: p.name.clone(),
            sha256: sha256.clone(),
        };
        let mut batch = Batch::default();
        self.record_filing(&service, &mut state, &mut inc, entry, &mut batch)?;
        let detail = serde_json::json!({"incident": inc.id, "stage": stage, "sha256": sha256});
        let filed_as = "incident.regulatory_report";
        batch
            .audit
            .push(audit(now, &p.name, filed_as, &report.id, detail));
        batch.docs.push(Doc {
            kind: REGULATORY_REPORT.into(),
            id: report.id.clone(),
            service: inc.service.clone(),
            created_ms: now.0,
            body: value,
        });
        govern::save_incident(&mut batch, &inc, now, &p.name, filed_as);
        Ok((report, self.writer.submit(batch).await))
    }

    fn record_filing(
        &self,
        service: &Service,
        state: &mut State,
        inc: &mut Incident,
        entry: Filed,
        batch: &mut Batch,
    ) -> Result<(), ApiError> {
        let ctx = self.ctx(&service.name, self.now());
        govern::drive(&ctx, govern::on(state), batch, |s, fx| {
            regulatory::file(s, inc, entry, fx)
        })
        .map_err(govern::refusal)?;
        state.gov.store_active(inc);
        Ok(())
    }

    /// The report of `inc` as it would be filed now (a draft without
    /// `filing`).
    pub async fn assemble(
        &self,
        inc: &Incident,
        narrative: &Narrative,
        filing: Option<(ReportStage, usize, Time, &Principal)>,
    ) -> Result<RegulatoryReport, ApiError> {
        let unavailable = |e: anyhow::Error| ApiError::unavailable(format!("{e:#}"));
        let gathered = sources(&*self.store, inc.clone())
            .await
            .map_err(unavailable)?;
        let src = gathered.sources(self.regulation());
        let filing = filing.map(|(stage, number, at, p)| Filing {
            stage,
            number,
            at: at.to_rfc3339(),
            by: p.name.clone(),
        });
        Ok(build(&src, narrative, filing))
    }

    /// The incident's filed reports, oldest first.
    pub async fn regulatory_reports(
        &self,
        inc: &Incident,
    ) -> Result<Vec<RegulatoryReport>, ApiError> {
        filed(&*self.store, inc)
            .await
            .map_err(|e| ApiError::unavailable(format!("{e:#}")))
    }

    /// A reporting timer came due: the incident is read from the active
    /// ones or, once resolved, from the store.
    pub(crate) async fn report_timer(
        &self,
        service: &Service,
        state: &mut State,
        (subject, percent): (&str, u32),
        batch: &mut Batch,
    ) {
        let inc = match state.gov.incidents.iter().find(|i| i.id == subject) {
            Some(active) => active.clone(),
            None => match self.incident(subject).await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!("reporting timer of {subject}: {}", e.message);
                    return;
                }
            },
        };
        let ctx = self.ctx(&service.name, self.now());
        govern::drive_gov(&ctx, state, batch, |g, s, fx| {
            fx.extend(g.on_report_timer(s, inc, percent));
        });
    }
}
