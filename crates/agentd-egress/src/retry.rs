//! When to try again: a server's `Retry-After`, read one way for every client, else an
//! exponential [`Backoff`] with [`Jitter`].
//!
//! [`retry_after`] reads `retry-after-ms` (OpenAI's, more precise, so it wins) and
//! `Retry-After` (RFC 9110 §10.2.3: delta-seconds or an HTTP-date). It is lenient where leniency
//! is safe (fractional seconds, all three HTTP-date formats, a numeric time zone) and strict
//! where a guess would be wrong: a value that is not a plain decimal number or a date (`-3`,
//! `+5`, `1e3`, `inf`, `soon`) is ignored, so the caller falls back on its backoff. A date
//! already past means "now"; a number too large for any clock is the cap; every wait is at
//! most the caller's cap.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// Statuses that mean "try again later" for any HTTP service: request timeout, rate limit and
/// the transient server errors. (A client may add its protocol's own: the LLM client adds 409 and
/// Anthropic's 529.) 501 and 505 are not among them: they do not go away.
pub const RETRYABLE_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// The wait a response asks for, from `retry-after-ms` or `Retry-After`, at most `cap`; `None`
/// when it asks for none (or says something that is not a wait).
pub fn retry_after(headers: &HeaderMap, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    parse_retry_after(value("retry-after-ms"), value("retry-after"), now, cap)
}

fn parse_retry_after(millis: Option<&str>, retry_after: Option<&str>, now: SystemTime, cap: Duration) -> Option<Duration> {
    let wait = millis.and_then(|ms| decimal(ms.trim(), Unit::Millis)).or_else(|| {
        let text = retry_after?.trim();
        decimal(text, Unit::Seconds).or_else(|| Some(until(http_date(text)?, now)))
    })?;
    Some(wait.min(cap))
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

/// `DIGITS` or `DIGITS.DIGITS` in `unit`; a whole part too large for a `u64` saturates (RFC 9110
/// asks that an overflowing delta-seconds be read as the largest value one can hold).
fn decimal(text: &str, unit: Unit) -> Option<Duration> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let whole: u64 = whole.parse().unwrap_or(u64::MAX);
    // The fraction in nanoseconds: 9 digits of a second, 6 of a millisecond.
    let places = match unit {
        Unit::Seconds => 9,
        Unit::Millis => 6,
    };
    let nanos = fraction.map_or(0, |f| {
        let kept: String = f.chars().chain(std::iter::repeat('0')).take(places).collect();
        kept.parse::<u64>().unwrap_or(0)
    });
    let whole = match unit {
        Unit::Seconds => Duration::from_secs(whole),
        Unit::Millis => Duration::from_millis(whole),
    };
    Some(whole.saturating_add(Duration::from_nanos(nanos)))
}

/// An HTTP-date in any of its three formats (IMF-fixdate, RFC 850, asctime), or an RFC 2822
/// date with a numeric zone, which some servers send.
fn http_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text)
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc2822(text).ok().map(SystemTime::from))
}

/// How long from `now` until `at`; zero for a time already past.
fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// How a wait is spread, so that clients that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Up to this fraction shorter, never longer (a backoff that must not exceed its nominal).
    Below(f64),
    /// Up to this fraction either way (a documented schedule: "5 s ± 10 %").
    Around(f64),
}

impl Jitter {
    /// `wait` spread by a random amount.
    pub fn spread(self, wait: Duration) -> Duration {
        self.spread_by(wait, rand::random_range(0.0..=1.0))
    }

    /// `wait` spread by `unit` (0 to 1; out-of-range values are clamped): 0 is the shortest
    /// wait, 1 the longest. Tests pass a fixed value.
    pub fn spread_by(self, wait: Duration, unit: f64) -> Duration {
        let unit = if unit.is_nan() { 1.0 } else { unit.clamp(0.0, 1.0) };
        let factor = match self {
            Jitter::Below(fraction) => 1.0 - fraction.clamp(0.0, 1.0) * (1.0 - unit),
            Jitter::Around(fraction) => 1.0 + fraction.clamp(0.0, 1.0) * (2.0 * unit - 1.0),
        };
        // mul_f64 panics on overflow; no schedule comes near, but a wait is never worth a panic.
        Duration::try_from_secs_f64(wait.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }
}

/// Exponential backoff: `base` before the first retry, doubled for each one after, up to
/// `max_factor` × `base`, each less up to a quarter at random ([`Jitter::Below`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub base: Duration,
    /// The longest wait, as a multiple of `base`.
    pub max_factor: u32,
}

impl Backoff {
    /// The jitter of every wait.
    pub const JITTER: Jitter = Jitter::Below(0.25);

    /// A backoff from `base` up to 16 × `base` (8 s for 500 ms).
    pub const fn new(base: Duration) -> Backoff {
        Backoff { base, max_factor: 16 }
    }

    /// The wait before retry number `retry` (1 for the first), before jitter.
    pub fn nominal(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX).min(self.max_factor.max(1));
        self.base.saturating_mul(factor)
    }

    /// The wait before retry number `retry` (1 for the first), jittered at random.
    pub fn wait(&self, retry: u32) -> Duration {
        Self::JITTER.spread(self.nominal(retry))
    }

    /// [`Backoff::wait`] with the jitter's `unit` given (see [`Jitter::spread_by`]).
    pub fn wait_by(&self, retry: u32, unit: f64) -> Duration {
        Self::JITTER.spread_by(self.nominal(retry), unit)
    }
}

#[cfg(test)]
mod tests {
    //! One test per way the three earlier copies (agentd-llm's, agentd-embed's and the webhook
    //! dispatcher's) disagreed, each naming what they did.
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// 2015-10-21T07:28:00Z.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    fn read(millis: Option<&str>, seconds: Option<&str>) -> Option<Duration> {
        parse_retry_after(millis, seconds, now(), MINUTE)
    }

    fn secs(text: &str) -> Option<Duration> {
        read(None, Some(text))
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(secs("1"), Some(Duration::from_secs(1)));
        assert_eq!(secs(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(secs("0"), Some(Duration::ZERO));
        assert_eq!(read(None, None), None);
    }

    /// The webhook copy parsed whole seconds only and ignored "0.5"; the LLM and embeddings
    /// copies read it. Read: providers send fractions.
    #[test]
    fn fractional_seconds_are_read() {
        assert_eq!(secs("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(secs("1.25"), Some(Duration::from_millis(1250)));
        assert_eq!(secs("2.0000000019"), Some(Duration::from_nanos(2_000_000_001)), "nanoseconds, the rest cut");
        assert_eq!(secs("1."), None);
        assert_eq!(secs(".5"), None);
    }

    /// The webhook copy ignored `retry-after-ms`; the others read it, and it won over
    /// `Retry-After` (it is the more precise). It still does, for every client.
    #[test]
    fn retry_after_ms_is_read_and_wins() {
        assert_eq!(read(Some("250"), None), Some(Duration::from_millis(250)));
        assert_eq!(read(Some("1500"), Some("2")), Some(Duration::from_millis(1500)));
        assert_eq!(read(Some("20.5"), None), Some(Duration::from_micros(20_500)));
        assert_eq!(read(Some("soon"), Some("2")), Some(Duration::from_secs(2)), "a bad one falls back on Retry-After");
    }

    /// The LLM copy turned `retry-after-ms: 1e300` into a Duration before capping it, which
    /// panics; the embeddings copy capped first. Now an exponent is not a number of
    /// milliseconds at all, and a huge plain number is the cap.
    #[test]
    fn huge_values_are_the_cap_and_never_panic() {
        assert_eq!(read(Some("1e300"), None), None);
        assert_eq!(read(Some("600000"), None), Some(MINUTE));
        assert_eq!(read(Some("99999999999999999999999999"), None), Some(MINUTE));
        assert_eq!(secs("3600"), Some(MINUTE));
        assert_eq!(parse_retry_after(None, Some("99999999999999999999999.9999999999"), now(), Duration::MAX), Some(Duration::MAX));
    }

    /// A delta-seconds too large for a u64: the webhook copy (`parse::<u64>`) ignored it, the
    /// others capped it. RFC 9110 says to read an overflow as the largest value: the cap.
    #[test]
    fn an_overflowing_delta_seconds_is_the_cap() {
        assert_eq!(secs("99999999999999999999999999"), Some(MINUTE));
    }

    /// Signs, exponents, infinities: the LLM and embeddings copies parsed `f64` and took `+5`,
    /// `1e3` and `1e300` (capped); the webhook copy took `+5` (u64 accepts a sign). None of
    /// them is delta-seconds (`1*DIGIT`): ignored, so the caller backs off on its own.
    #[test]
    fn negative_and_garbage_values_are_ignored() {
        for garbage in ["-3", "+5", "1e3", "1e300", "inf", "NaN", "0x10", "soon", "", "  ", "5 s", "1,5"] {
            assert_eq!(secs(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn an_imf_fixdate() {
        assert_eq!(secs("Wed, 21 Oct 2015 07:28:07 GMT"), Some(Duration::from_secs(7)));
        assert_eq!(secs("Thu, 22 Oct 2015 07:28:00 GMT"), Some(MINUTE), "capped");
    }

    /// A date already past: the webhook copy ignored it (None), the others waited zero. Zero:
    /// the server said "from then on", and then is now.
    #[test]
    fn a_date_already_past_means_now() {
        assert_eq!(secs("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
    }

    /// RFC 9110 §5.6.7: a recipient must accept the obsolete RFC 850 and asctime formats too.
    /// All three copies read RFC 2822 only and ignored these.
    #[test]
    fn obsolete_date_formats_are_read() {
        assert_eq!(secs("Wednesday, 21-Oct-15 07:28:09 GMT"), Some(Duration::from_secs(9)));
        assert_eq!(secs("Wed Oct 21 07:28:11 2015"), Some(Duration::from_secs(11)));
    }

    /// All three copies read dates through chrono's RFC 2822 parser, which takes a numeric zone;
    /// kept, as some servers send one.
    #[test]
    fn a_numeric_time_zone_is_still_read() {
        assert_eq!(secs("Wed, 21 Oct 2015 09:28:05 +0200"), Some(Duration::from_secs(5)));
    }

    /// The cap was 60 s in the LLM and embeddings copies and a day in the webhook one: it is the
    /// caller's.
    #[test]
    fn the_cap_is_the_callers() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(parse_retry_after(None, Some("7200"), now(), day), Some(Duration::from_secs(7200)));
        assert_eq!(parse_retry_after(None, Some("172800"), now(), day), Some(day));
        assert_eq!(parse_retry_after(None, Some("7200"), now(), MINUTE), Some(MINUTE));
    }

    #[test]
    fn response_headers_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now(), MINUTE), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers, now(), MINUTE), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "20".parse().unwrap());
        assert_eq!(retry_after(&headers, now(), MINUTE), Some(Duration::from_millis(20)));
        headers.insert("retry-after-ms", reqwest::header::HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(retry_after(&headers, now(), MINUTE), Some(Duration::from_secs(2)), "a value that is not text is none");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff::new(Duration::from_millis(500));
        let nominal: Vec<_> = (1..=7).map(|n| backoff.nominal(n).as_millis()).collect();
        assert_eq!(nominal, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(backoff.nominal(0), Duration::from_millis(500), "retry 0 reads as the first");
        assert_eq!(backoff.nominal(u32::MAX), Duration::from_secs(8));
        let no_growth = Backoff { max_factor: 0, ..backoff };
        assert_eq!(no_growth.nominal(5), Duration::from_millis(500), "a factor of 0 is 1");
        assert_eq!(Backoff::new(Duration::MAX).nominal(3), Duration::MAX, "saturates");
    }

    #[test]
    fn backoff_jitter_only_shortens_by_up_to_a_quarter() {
        let backoff = Backoff::new(Duration::from_millis(400));
        assert_eq!(backoff.wait_by(1, 0.0), Duration::from_millis(300));
        assert_eq!(backoff.wait_by(1, 0.5), Duration::from_millis(350));
        assert_eq!(backoff.wait_by(1, 1.0), Duration::from_millis(400));
        assert_eq!(backoff.wait_by(2, 1.0), Duration::from_millis(800));
        for retry in 1..=6 {
            let (wait, nominal) = (backoff.wait(retry), backoff.nominal(retry));
            assert!(wait <= nominal && wait >= nominal.mul_f64(0.75), "{retry}: {wait:?}");
        }
    }

    #[test]
    fn jitter_around_spreads_both_ways_and_clamps() {
        let five = Duration::from_secs(5);
        let around = Jitter::Around(0.1);
        assert_eq!(around.spread_by(five, 0.0), Duration::from_millis(4500));
        assert_eq!(around.spread_by(five, 0.5), five);
        assert_eq!(around.spread_by(five, 1.0), Duration::from_millis(5500));
        assert_eq!(around.spread_by(five, 7.0), Duration::from_millis(5500), "clamped to 1");
        assert_eq!(around.spread_by(five, -1.0), Duration::from_millis(4500), "clamped to 0");
        assert_eq!(around.spread_by(five, f64::NAN), Duration::from_millis(5500));
        assert_eq!(Jitter::Around(0.1).spread_by(Duration::MAX, 1.0), Duration::MAX, "no overflow panic");
    }
}
