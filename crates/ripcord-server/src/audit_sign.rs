//! The audit log's signing key and the checkpoints published outside the
//! store. The key lives outside the data dir (`--audit-key`), and every
//! signed checkpoint is appended to a file the operator chooses
//! (`--audit-checkpoints`), so that neither a copy of the data dir nor
//! write access to the database is enough to rewrite the log unnoticed.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::auth::{random_32, write_private};

/// The audit log's signing key: 32 random bytes, hex, in the file at
/// `path` (mode 0600), made on first start. The file must not be inside
/// `data_dir`: whoever can rewrite the database could then re-sign it.
pub fn audit_key(path: &Path, data_dir: &Path) -> std::io::Result<ed25519_dalek::SigningKey> {
    refuse_inside(path, data_dir)?;
    if let Ok(text) = std::fs::read_to_string(path) {
        return parse_key(path, &text);
    }
    let legacy = data_dir.join("audit.key");
    if legacy.exists() {
        return Err(std::io::Error::other(format!(
            "{} is inside the data dir, where whoever can write the database could re-sign \
             it; move it out (mv {} {}) or name its new place with --audit-key",
            legacy.display(),
            legacy.display(),
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let seed = random_32()?;
    // Written aside and linked into place, so that two servers starting at
    // once agree on one key and none reads a half-written file.
    let aside = path.with_extension(format!(
        "new-{}",
        &ripcord_core::audit::hex(&random_32()?)[..16]
    ));
    write_private(&aside, &ripcord_core::audit::hex(&seed))?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(ed25519_dalek::SigningKey::from_bytes(&seed)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            parse_key(path, &std::fs::read_to_string(path)?)
        }
        Err(e) => Err(e),
    }
}

/// The key's default place, outside any data dir:
/// `$XDG_CONFIG_HOME/ripcord/audit.key`, else `~/.config/ripcord/audit.key`.
pub fn default_audit_key() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(config.join("ripcord").join("audit.key"))
}

fn parse_key(path: &Path, text: &str) -> std::io::Result<ed25519_dalek::SigningKey> {
    let seed = ripcord_core::audit::unhex::<32>(text.trim())
        .ok_or_else(|| std::io::Error::other(format!("{}: not 64 hex digits", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Refuses a key path inside the data dir (compared after resolving
/// links, so `data/../data/k` and symlinks count too).
fn refuse_inside(path: &Path, data_dir: &Path) -> std::io::Result<()> {
    if inside(path, data_dir) {
        return Err(std::io::Error::other(format!(
            "--audit-key {}: the signing key must live outside the data dir {}, or whoever \
             can write the database could re-sign it",
            path.display(),
            data_dir.display()
        )));
    }
    Ok(())
}

/// Whether the file at `path` would be inside `dir`.
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    resolve(parent).starts_with(resolve(dir))
}

/// Appends each signed checkpoint's export line to a file, durably, as one
/// JSON line (`ripcord audit verify --checkpoints FILE` reads it back).
pub struct Publisher {
    path: PathBuf,
}

impl Publisher {
    /// Opens (or creates) the file now, so that a wrong path stops the
    /// start rather than the first checkpoint.
    pub fn open(path: &Path, data_dir: &Path) -> std::io::Result<Publisher> {
        let publisher = Publisher {
            path: path.to_path_buf(),
        };
        if inside(path, data_dir) {
            tracing::warn!(
                "--audit-checkpoints {} is inside the data dir: a copy there proves little; \
                 publish where the database's writers cannot",
                path.display()
            );
        }
        publisher.append("")?;
        Ok(publisher)
    }

    /// Appends `line` (without its newline) and syncs.
    pub fn append(&self, line: &str) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&self.path)?;
        if !line.is_empty() {
            writeln!(file, "{line}")?;
            file.sync_all()?;
        }
        Ok(())
    }
}
