//! How long to wait before trying again: the server's `Retry-After`, else exponential backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// The longest a server's `Retry-After` makes us wait.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The backoff doubles up to this many times its base (8 s for a 500 ms base).
const MAX_BACKOFF_FACTOR: u32 = 16;

/// The wait a response asks for, from `retry-after-ms` (OpenAI) or `Retry-After` (seconds,
/// fractional seconds or an HTTP-date), capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    parse_retry_after(value("retry-after-ms"), value("retry-after"), now)
}

fn parse_retry_after(millis: Option<&str>, retry_after: Option<&str>, now: DateTime<Utc>) -> Option<Duration> {
    let seconds = |text: &str, scale: f64| {
        text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(|s| s / scale)
    };
    let wait = millis.and_then(|ms| seconds(ms, 1000.0)).map(Duration::from_secs_f64).or_else(|| {
        let text = retry_after?;
        if let Some(s) = seconds(text, 1.0) {
            // Larger than any Duration would overflow from_secs_f64; the cap applies below anyway.
            return Some(Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())));
        }
        let at = DateTime::parse_from_rfc2822(text.trim()).ok()?;
        Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
    })?;
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The wait before retry number `retry` (1 for the first) without a `Retry-After`: `base`
/// doubled each time up to 16 × `base`, less up to a quarter at random so that clients that failed
/// together do not retry together.
pub(crate) fn backoff(base: Duration, retry: u32) -> Duration {
    let nominal = nominal_backoff(base, retry);
    nominal.mul_f64(rand::random_range(0.75..=1.0))
}

fn nominal_backoff(base: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX).min(MAX_BACKOFF_FACTOR);
    base.saturating_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn retry_after_in_seconds_fractions_and_milliseconds() {
        assert_eq!(parse_retry_after(None, Some("1"), now()), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(None, Some(" 0.5 "), now()), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after(Some("250"), None, now()), Some(Duration::from_millis(250)));
        // retry-after-ms is the more precise of the two and wins.
        assert_eq!(parse_retry_after(Some("1500"), Some("2"), now()), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after(Some("soon"), Some("2"), now()), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(None, Some("-3"), now()), None);
        assert_eq!(parse_retry_after(None, Some("later"), now()), None);
        assert_eq!(parse_retry_after(None, None, now()), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        assert_eq!(parse_retry_after(None, Some("Wed, 21 Oct 2015 07:28:07 GMT"), now()), Some(Duration::from_secs(7)));
        // A date already past means "now".
        assert_eq!(parse_retry_after(None, Some("Wed, 21 Oct 2015 07:27:00 GMT"), now()), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_is_capped_at_a_minute() {
        assert_eq!(parse_retry_after(None, Some("3600"), now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after(None, Some("1e300"), now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after(Some("600000"), None, now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after(None, Some("Thu, 22 Oct 2015 07:28:00 GMT"), now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_reads_response_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "20".parse().unwrap());
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_millis(20)));
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_with_jitter_below() {
        let base = Duration::from_millis(500);
        let nominal: Vec<_> = (1..=7).map(|n| nominal_backoff(base, n).as_millis()).collect();
        assert_eq!(nominal, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(nominal_backoff(base, 1000), Duration::from_secs(8));
        for retry in 1..=6 {
            let wait = backoff(base, retry);
            let nominal = nominal_backoff(base, retry);
            assert!(wait <= nominal && wait >= nominal.mul_f64(0.75), "{retry}: {wait:?}");
        }
    }
}
