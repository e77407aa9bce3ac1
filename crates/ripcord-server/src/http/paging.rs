//! Paged lists: `limit` (1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent)
//! and `offset` into the list's order; an answer that stops short of the
//! end says where the next page starts (`next_offset`).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The paging part of a list's query.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl PageQuery {
    /// `(offset, limit)`, or a 400 naming the parameter.
    fn bounds(self) -> Result<(usize, usize), ApiError> {
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "limit: must be between 1 and {MAX_LIMIT}, got {n}"
                )));
            }
        };
        let offset = match self.offset {
            None => 0,
            Some(n) => usize::try_from(n).map_err(|_| {
                ApiError::bad_request(format!("offset: must be 0 or more, got {n}"))
            })?,
        };
        Ok((offset, limit))
    }
}

/// One page of `items` as `{<key>: [...], "total": n, "next_offset": m?}`.
pub fn page<T: serde::Serialize>(
    key: &str,
    items: Vec<T>,
    q: PageQuery,
) -> Result<Value, ApiError> {
    let (offset, limit) = q.bounds()?;
    let total = items.len();
    let shown: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let end = offset.saturating_add(shown.len());
    let mut answer = json!({ key: shown, "total": total });
    if end < total {
        answer["next_offset"] = json!(end);
    }
    Ok(answer)
}

/// A log page (the audit log, a service's decisions) as NDJSON, one stored
/// line each, with the cursor for the next page in `ripcord-next-after`.
pub fn ndjson_page<'a>(
    lines: impl Iterator<Item = &'a str>,
    next: i64,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static("ripcord-next-after"),
                next.to_string(),
            ),
        ],
        axum::body::Body::from(text),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_stop_at_the_end_and_bad_bounds_name_the_parameter() {
        let q = |limit, offset| PageQuery { limit, offset };
        let a = page("x", (0..5).collect(), q(Some(2), Some(2))).unwrap();
        assert_eq!(a, json!({"x": [2, 3], "total": 5, "next_offset": 4}));
        let b = page("x", (0..5).collect(), q(Some(2), Some(4))).unwrap();
        assert_eq!(b, json!({"x": [4], "total": 5}));
        let err = page("x", vec![1], q(Some(0), None)).unwrap_err();
        assert_eq!(err.message, "limit: must be between 1 and 1000, got 0");
        let err = page("x", vec![1], q(None, Some(-1))).unwrap_err();
        assert_eq!(err.message, "offset: must be 0 or more, got -1");
    }
}
