//! How long to wait before trying again: the server's `Retry-After`, else exponential backoff.
//! (The same rules as agentd-llm's chat client, whose helpers are private to it.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// The longest a server's `Retry-After` makes us wait.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Statuses that mean "try again later": timeout, rate limit, server errors.
pub(crate) const RETRYABLE_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// The wait a response asks for, from `retry-after-ms` (OpenAI) or `Retry-After` (seconds,
/// fractional seconds or an HTTP-date), capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let seconds = |text: &str, scale: f64| {
        text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(|s| (s / scale).min(MAX_RETRY_AFTER.as_secs_f64()))
    };
    let wait = value("retry-after-ms").and_then(|ms| seconds(ms, 1000.0)).map(Duration::from_secs_f64).or_else(|| {
        let text = value("retry-after")?;
        if let Some(s) = seconds(text, 1.0) {
            return Some(Duration::from_secs_f64(s));
        }
        let at = DateTime::parse_from_rfc2822(text.trim()).ok()?;
        Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
    })?;
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The wait before retry number `retry` (1 for the first) without a `Retry-After`: `base`
/// doubled each time up to 16 × `base`, less up to a quarter at random so that clients that
/// failed together do not retry together.
pub(crate) fn backoff(base: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    base.saturating_mul(factor).mul_f64(rand::random_range(0.75..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn retry_after_forms_and_cap() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(retry_after(&headers(&[("retry-after", "2")]), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "20")]), now), Some(Duration::from_millis(20)));
        assert_eq!(retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:07 GMT")]), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(&[("retry-after", "1e300")]), now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_below() {
        let base = Duration::from_millis(100);
        for (retry, nominal) in [(1, 100), (2, 200), (3, 400), (5, 1600), (9, 1600)] {
            let wait = backoff(base, retry).as_millis();
            assert!(wait <= nominal && wait >= nominal * 3 / 4, "{retry}: {wait}");
        }
    }
}
