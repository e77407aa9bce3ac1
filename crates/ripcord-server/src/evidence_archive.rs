//! An evidence bundle as one reproducible `.tar.gz` (`ripcord evidence
//! export`, and the dashboard's download): the bundle, its events and
//! decisions as NDJSON, the policy it names and the versions' provenance,
//! with a manifest of every file's size and SHA-256 — after checking that
//! the bundle's bytes still hash to its address and that the stored policy
//! is the one the bundle names.

use std::io::Write;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use ripcord_core::Time;
use ripcord_core::evidence::{self, Bundle};
use ripcord_govern::record::{INCIDENT, Incident};
use ripcord_store::Store;
use serde_json::json;

/// Why an export stopped: evidence that does not verify (exit 1) or
/// anything else (exit 2).
pub enum Failure {
    Unverified(String),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Other(e.into())
    }
}

/// Whether `text` is a bundle address rather than an incident id.
pub fn is_address(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The address of the evidence bundle frozen when the incident opened.
pub async fn resolve_incident_bundle(store: &dyn Store, incident: &str) -> anyhow::Result<String> {
    let Some(doc) = store.doc(INCIDENT, incident).await? else {
        bail!(
            "{incident:?} is neither a bundle address (64 lowercase hex digits) nor an incident in the store"
        );
    };
    let stored: Incident = serde_json::from_value(doc.body)
        .with_context(|| format!("incident {incident} as stored"))?;
    match stored.evidence {
        Some(address) => Ok(address),
        None => bail!("incident {incident} has no evidence bundle"),
    }
}

/// The verified archive of a bundle (`target`: its address, or an
/// incident whose bundle it is), with the bundle's address.
pub async fn export(store: &dyn Store, target: &str) -> Result<(String, Vec<u8>), Failure> {
    let address = if is_address(target) {
        target.to_string()
    } else {
        resolve_incident_bundle(store, target).await?
    };
    let Some(bytes) = store.blob(&address).await? else {
        return Err(Failure::Other(anyhow::anyhow!(
            "no evidence bundle {address} in the store"
        )));
    };
    let bundle =
        evidence::open(&address, &bytes).map_err(|e| Failure::Unverified(e.to_string()))?;
    let policy = store
        .policy_version(&bundle.service, bundle.policy.version)
        .await?
        .ok_or_else(|| {
            Failure::Unverified(format!(
                "bundle {address}: policy {} version {} is not in the store",
                bundle.service, bundle.policy.version
            ))
        })?;
    let actual = evidence::address(policy.yaml.as_bytes());
    if actual != bundle.policy.sha256 {
        return Err(Failure::Unverified(format!(
            "bundle {address}: policy {} version {} hashes to {actual}, the bundle says {}",
            bundle.service, bundle.policy.version, bundle.policy.sha256
        )));
    }
    Ok((
        address.clone(),
        archive(&address, &bytes, &bundle, &policy.yaml)?,
    ))
}

/// The archive's files, in order, before the manifest.
fn files(
    bundle_bytes: &[u8],
    bundle: &Bundle,
    policy_yaml: &str,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let ndjson = |lines: &[String]| {
        lines
            .iter()
            .flat_map(|l| [l.as_bytes(), b"\n"])
            .flatten()
            .copied()
            .collect::<Vec<u8>>()
    };
    let mut out = vec![
        ("bundle.json".to_string(), bundle_bytes.to_vec()),
        ("events.ndjson".to_string(), ndjson(&bundle.events)),
        ("decisions.ndjson".to_string(), ndjson(&bundle.decisions)),
        ("policy.yaml".to_string(), policy_yaml.as_bytes().to_vec()),
    ];
    for p in &bundle.provenance {
        let mut text = serde_json::to_vec_pretty(&p.document)?;
        text.push(b'\n');
        out.push((format!("provenance/{}.json", file_name(&p.version)), text));
    }
    Ok(out)
}

/// A version name made safe as one path component.
fn file_name(version: &str) -> String {
    let name: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        "_".repeat(name.len().max(1))
    } else {
        name
    }
}

/// The archive: MANIFEST.json (every other file's size and SHA-256), then
/// the files. Every header has the bundle's freeze time and mode 0644, and
/// gzip carries no timestamp, so the same bundle gives the same bytes.
fn archive(
    address: &str,
    bundle_bytes: &[u8],
    bundle: &Bundle,
    policy_yaml: &str,
) -> anyhow::Result<Vec<u8>> {
    let files = files(bundle_bytes, bundle, policy_yaml)?;
    let manifest = json!({
        "format": evidence::FORMAT,
        "bundle": address,
        "frozen_at": bundle.frozen_at,
        "files": files.iter().map(|(path, bytes)| json!({
            "path": path, "bytes": bytes.len(), "sha256": evidence::address(bytes),
        })).collect::<Vec<_>>(),
    });
    let mut manifest = serde_json::to_vec_pretty(&manifest)?;
    manifest.push(b'\n');
    let mtime = Time::parse_rfc3339(&bundle.frozen_at).map_or(0, |t| t.0.max(0) / 1000) as u64;
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (path, bytes) in std::iter::once(("MANIFEST.json".to_string(), manifest)).chain(files) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &path, bytes.as_slice())
            .with_context(|| format!("archiving {path}"))?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_become_one_safe_path_component() {
        assert_eq!(file_name("v13"), "v13");
        assert_eq!(file_name("model/v1.2 beta"), "model_v1.2_beta");
        assert_eq!(file_name(".."), "__");
        assert_eq!(file_name(""), "_");
    }

    #[test]
    fn addresses_are_lowercase_hex_of_sha256_length() {
        assert!(is_address(&"ab".repeat(32)));
        assert!(!is_address(&"AB".repeat(32)));
        assert!(!is_address("inc-1"));
    }
}
