//! Retries: decorrelated-jitter backoff, `Retry-After`, a total time budget, and the rule for what may
//! be retried.
//!
//! What is retried:
//! - 429 and 5xx answers, for every request: the server tells us it did not (or could not) do the work.
//! - Connection failures, for every request: nothing reached the server.
//! - Timeouts and other mid-request transport failures **only for idempotent requests**: the server
//!   may have done the work, and doing a POST twice can create two things.
//!
//! A `Retry-After` longer than the remaining budget (or than [`RetryConfig::cap`]) ends the retries at
//! once: the error carries `retry_after`, and the caller (the engine's backoff) waits instead of
//! blocking a handler.

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng as _;
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, Request, Response, StatusCode};
use std::time::Duration;
use tokio::time::Instant;

use super::{HttpError, Redactor, body_snippet};

/// How hard to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// The smallest wait between attempts (and the jitter's floor).
    pub base: Duration,
    /// The largest wait between attempts.
    pub cap: Duration,
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Total time, from the first attempt, after which no retry starts.
    pub budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            max_retries: 5,
            budget: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// Never retry (one attempt).
    pub fn none() -> Self {
        RetryConfig { max_retries: 0, ..RetryConfig::default() }
    }
}

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Decide from the method: GET, HEAD, OPTIONS, PUT, DELETE are idempotent.
    FromMethod,
    /// Idempotent whatever the method (e.g. a read that is a POST, as Kasm's API does).
    Idempotent,
    /// Not idempotent whatever the method.
    NotIdempotent,
}

impl Idempotency {
    fn resolve(self, method: &Method) -> bool {
        match self {
            Idempotency::Idempotent => true,
            Idempotency::NotIdempotent => false,
            Idempotency::FromMethod => is_idempotent_method(method),
        }
    }
}

/// GET, HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110 §9.2.2).
pub fn is_idempotent_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// Decorrelated-jitter backoff: each wait is uniform in `[base, 3 × previous wait]`, capped. Spreads
/// clients that failed together better than plain exponential backoff, with no shared state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    prev: Duration,
}

impl Backoff {
    /// A fresh backoff for `cfg`.
    pub fn new(cfg: &RetryConfig) -> Self {
        Backoff { base: cfg.base, cap: cfg.cap.max(cfg.base), prev: cfg.base }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let lo = self.base.as_nanos().min(u64::MAX as u128) as u64;
        let hi = (self.prev.as_nanos().saturating_mul(3)).min(u64::MAX as u128) as u64;
        let pick = if hi > lo { rand::rng().random_range(lo..=hi) } else { lo };
        let d = Duration::from_nanos(pick).min(self.cap);
        self.prev = d;
        d
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime),
/// relative to `now`. A date in the past is a zero wait; anything else unparseable is `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = DateTime::parse_from_rfc2822(v)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S GMT").ok().map(|n| n.and_utc()))
        .or_else(|| NaiveDateTime::parse_from_str(v, "%a %b %e %H:%M:%S %Y").ok().map(|n| n.and_utc()))?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn retry_after_of(resp: &Response) -> Option<Duration> {
    let header = |name| resp.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
    header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, Utc::now())).or_else(|| {
        // Throttled without `Retry-After`: DigitalOcean says when its window frees up in `ratelimit-reset`.
        (resp.status() == StatusCode::TOO_MANY_REQUESTS)
            .then(|| header("ratelimit-reset"))
            .flatten()
            .and_then(|v| parse_ratelimit_reset(v, Utc::now()))
    })
}

/// Parses a `RateLimit-Reset` value relative to `now`: a Unix time in seconds (DigitalOcean's
/// `ratelimit-reset`, "given in Unix epoch time") when it is at least 10^9, else delta-seconds (the
/// IETF RateLimit-header drafts). A time in the past is a zero wait; anything else is `None`.
pub fn parse_ratelimit_reset(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let n = value.trim().parse::<u64>().ok()?;
    if n >= 1_000_000_000 {
        let at = DateTime::<Utc>::from_timestamp(i64::try_from(n).ok()?, 0)?;
        Some((at - now).to_std().unwrap_or(Duration::ZERO))
    } else {
        Some(Duration::from_secs(n))
    }
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Sends `request` with `client`, retrying per `cfg` and the rules of this module.
///
/// Returns the response when its status is a success (2xx/3xx); any other status becomes
/// [`HttpError::Status`] with the start of the body, redacted with `redactor`. The request body must
/// be cloneable (bytes or JSON, not a stream) for retries to happen; otherwise it is sent once.
pub async fn send(
    client: &reqwest::Client,
    request: Request,
    idempotency: Idempotency,
    cfg: &RetryConfig,
    redactor: &Redactor,
) -> Result<Response, HttpError> {
    let idempotent = idempotency.resolve(request.method());
    let started = Instant::now();
    let mut backoff = Backoff::new(cfg);
    let mut retries = 0u32;
    let mut pending = Some(request);
    loop {
        let req = pending.take().expect("a request for every attempt");
        // Keep a copy for the next attempt before this one consumes the request.
        let spare = if retries < cfg.max_retries { req.try_clone() } else { None };
        let (err, retry_after, may_retry) = match client.execute(req).await {
            Ok(resp) if !resp.status().is_client_error() && !resp.status().is_server_error() => return Ok(resp),
            Ok(resp) => {
                let status = resp.status();
                let retry_after = retry_after_of(&resp);
                let body = resp.text().await.unwrap_or_default();
                let err = HttpError::Status { status, body: body_snippet(&body, redactor), retry_after };
                (err, retry_after, retryable_status(status))
            }
            Err(e) => {
                // Connect errors never reached the server; anything later may have been processed.
                let may_retry = e.is_connect() || idempotent;
                (HttpError::from_reqwest(e, redactor), None, may_retry)
            }
        };
        let Some(next) = spare.filter(|_| may_retry) else { return Err(err) };
        let mut delay = backoff.next_delay();
        if let Some(ra) = retry_after {
            if ra > cfg.cap {
                tracing::debug!(error = %err, retry_after = ?ra, "not retrying: the server asks for a longer wait than the cap");
                return Err(err);
            }
            delay = delay.max(ra);
        }
        if started.elapsed() + delay > cfg.budget {
            tracing::debug!(error = %err, "not retrying: the retry budget is spent");
            return Err(err);
        }
        retries += 1;
        tracing::debug!(error = %err, attempt = retries, delay = ?delay, "retrying HTTP request");
        tokio::time::sleep(delay).await;
        pending = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:05 2015", now), Some(Duration::from_secs(5)));
        // A date in the past means "now".
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn ratelimit_reset_epoch_or_delta() {
        let now = Utc.with_ymd_and_hms(2015, 10, 15, 17, 57, 3).unwrap();
        assert_eq!(parse_ratelimit_reset("1444931833", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_ratelimit_reset("1444931000", now), Some(Duration::ZERO));
        assert_eq!(parse_ratelimit_reset("30", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_ratelimit_reset("soon", now), None);
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_cap_and_grows() {
        let cfg = RetryConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(500),
            max_retries: 50,
            budget: Duration::from_secs(60),
        };
        let mut b = Backoff::new(&cfg);
        let mut prev = cfg.base;
        let mut max_seen = Duration::ZERO;
        for _ in 0..200 {
            let d = b.next_delay();
            assert!(d >= cfg.base && d <= cfg.cap, "{d:?}");
            assert!(d <= (prev * 3).min(cfg.cap), "{d:?} after {prev:?}");
            prev = d;
            max_seen = max_seen.max(d);
        }
        // 200 draws from a window that triples: the cap is reached.
        assert!(max_seen > Duration::from_millis(100), "{max_seen:?}");
    }

    #[test]
    fn idempotency_by_method() {
        assert!(Idempotency::FromMethod.resolve(&Method::GET));
        assert!(Idempotency::FromMethod.resolve(&Method::PUT));
        assert!(Idempotency::FromMethod.resolve(&Method::DELETE));
        assert!(!Idempotency::FromMethod.resolve(&Method::POST));
        assert!(!Idempotency::FromMethod.resolve(&Method::PATCH));
        assert!(Idempotency::Idempotent.resolve(&Method::POST));
        assert!(!Idempotency::NotIdempotent.resolve(&Method::GET));
    }
}
