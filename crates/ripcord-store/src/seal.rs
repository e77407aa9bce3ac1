//! Webhook secrets at rest. The `secret` columns of `sinks` and `outbox`
//! hold `sealed:v1:<nonce hex><ciphertext+tag hex>` (ChaCha20-Poly1305,
//! the row's URL as associated data, so a sealed secret moved to another
//! sink's row does not open), under a key that lives outside the database
//! (`<data-dir>/secrets.key` by default): a copy of the database file, its
//! WAL or a backup does not reveal the secrets. Rows written before
//! sealing existed are read as they are.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Result, StoreError};

const PREFIX: &str = "sealed:v1:";

pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Result<Sealer> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key)
            .map_err(|_| StoreError::Corrupt("the secrets key is not 32 bytes".into()))?;
        Ok(Sealer {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }

    /// `secret` sealed for the row of `url`.
    pub fn seal(&self, secret: &str, url: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| StoreError::Corrupt("no random bytes for a nonce".into()))?;
        let mut bytes = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(url.as_bytes()),
                &mut bytes,
            )
            .map_err(|_| StoreError::Corrupt("sealing a secret failed".into()))?;
        Ok(format!("{PREFIX}{}{}", hex(&nonce), hex(&bytes)))
    }

    /// The secret stored for the row of `url`; unsealed rows as they are.
    pub fn open(&self, stored: &str, url: &str) -> Result<String> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bad = || StoreError::Corrupt(format!("the sealed secret of {url} does not open"));
        let bytes = unhex(sealed).ok_or_else(bad)?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(url.as_bytes()), &mut rest)
            .map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_url() {
        let sealer = Sealer::new(&[7; 32]).unwrap();
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sealed = sealer.seal(secret, "http://a/hook").unwrap();
        assert!(sealed.starts_with("sealed:v1:"));
        assert!(!sealed.contains("MfKQ9r8"));
        assert_ne!(sealed, sealer.seal(secret, "http://a/hook").unwrap());
        assert_eq!(sealer.open(&sealed, "http://a/hook").unwrap(), secret);
        assert!(sealer.open(&sealed, "http://b/hook").is_err());
        assert!(
            Sealer::new(&[8; 32])
                .unwrap()
                .open(&sealed, "http://a/hook")
                .is_err()
        );
        let mut flipped = sealed.clone();
        flipped.replace_range(40..41, if &sealed[40..41] == "0" { "1" } else { "0" });
        assert!(sealer.open(&flipped, "http://a/hook").is_err());
        assert!(sealer.open("sealed:v1:zz", "http://a/hook").is_err());
        // Rows from before sealing are read as they are.
        assert_eq!(sealer.open(secret, "http://a/hook").unwrap(), secret);
    }
}
