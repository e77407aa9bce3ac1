//! Service and version names: checked where they enter, by the HTTP routes
//! and by token scopes alike.

use crate::error::ApiError;

/// Service and version names: what fits in a URL path segment and a label.
/// Names made only of dots are refused: `.` and `..` are path segments
/// with a meaning of their own.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.chars().all(|c| c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: \"{name}\" must be 1–128 characters of letters, digits, '-', '_' or '.', \
             and not only dots"
        )))
    }
}
