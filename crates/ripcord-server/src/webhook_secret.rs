//! Webhook secrets, `whsec_` + base64 of the key as the Standard Webhooks
//! specification writes them: made for sinks, and checked wherever one
//! enters (the sinks API, the config's webhook channels).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

/// Makes a new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    // getrandom only fails without an OS entropy source; a zero key would
    // still sign, and the caller sees the secret it got.
    let _ = getrandom::fill(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// Key sizes the Standard Webhooks specification recommends for symmetric
/// secrets, in bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Whether `secret` is a usable sink secret: `whsec_` followed by the
/// base64 of 24 to 64 bytes. An empty key would sign with no secret at all.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_")?;
    let key = STANDARD_PAD_INDIFFERENT
        .decode(encoded)
        .map_err(|e| format!("must be whsec_ followed by base64: {e}"))?;
    if !SECRET_BYTES.contains(&key.len()) {
        return Err(format!(
            "the key must be {} to {} bytes, got {}",
            SECRET_BYTES.start(),
            SECRET_BYTES.end(),
            key.len()
        ));
    }
    Ok(())
}
