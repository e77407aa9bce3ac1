//! The admin token: made on first start, kept in `<data-dir>/admin.token`
//! (mode 0600), held in memory only as its SHA-256 and compared in constant
//! time. Roles come with governance; today one token may do everything.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The principal of the admin token in the audit log.
pub const ADMIN: &str = "admin";

/// Who made a request: a token's name and role.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub name: String,
    pub role: String,
}

impl Principal {
    pub fn admin() -> Principal {
        Principal {
            name: ADMIN.into(),
            role: "admin".into(),
        }
    }
}

pub struct Tokens {
    admin: [u8; 32],
}

/// Where the token lives, and whether this start created it.
pub struct Issued {
    pub tokens: Tokens,
    pub path: PathBuf,
    pub created: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

impl Tokens {
    /// Reads the admin token from the data dir, creating it if missing.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Issued> {
        let path = data_dir.join("admin.token");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(Issued {
                tokens: Tokens {
                    admin: digest(&text),
                },
                path,
                created: false,
            });
        }
        let token = format!("rc_{}", ripcord_core::audit::hex(&random_32()?));
        write_private(&path, &token)?;
        Ok(Issued {
            tokens: Tokens {
                admin: digest(&token),
            },
            path,
            created: true,
        })
    }

    /// Whether an `Authorization` header value carries a valid token.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        digest(token).ct_eq(&self.admin).into()
    }
}

/// The audit log's signing key: 32 random bytes, hex, in
/// `<data-dir>/audit.key` (mode 0600), made on first start.
pub fn audit_key(data_dir: &Path) -> std::io::Result<ed25519_dalek::SigningKey> {
    let path = data_dir.join("audit.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let seed = ripcord_core::audit::unhex::<32>(text.trim()).ok_or_else(|| {
            std::io::Error::other(format!("{}: not 64 hex digits", path.display()))
        })?;
        return Ok(ed25519_dalek::SigningKey::from_bytes(&seed));
    }
    let seed = random_32()?;
    write_private(&path, &ripcord_core::audit::hex(&seed))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn random_32() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// Writes a secret to a new file only its owner can read, durably.
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}
