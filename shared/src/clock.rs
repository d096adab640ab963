//! Time as a port, so the simulator can run hours of virtual time in milliseconds.

use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (simulation and tests).
#[derive(Debug)]
pub struct VirtualClock(Mutex<DateTime<Utc>>);

impl VirtualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += d;
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = t;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// The longest span a configured number of seconds is taken to mean (100 years): beyond it, every
/// timer means "never" in practice, and date arithmetic stays far from chrono's limits.
pub const MAX_SPAN_SECS: i64 = 100 * 366 * 86_400;

/// A configured number of seconds as a signed count, saturating at [`MAX_SPAN_SECS`]: a huge `u64`
/// (say `18446744073709551615`) means "very long", never a negative number from a wrapping cast.
pub fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX).min(MAX_SPAN_SECS)
}

/// `at` plus `v` seconds, saturating (never panics, never wraps).
pub fn after(at: DateTime<Utc>, v: u64) -> DateTime<Utc> {
    at.checked_add_signed(chrono::Duration::seconds(secs(v))).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        assert_eq!(secs(0), 0);
        assert_eq!(secs(600), 600);
        for v in [u64::MAX, i64::MAX as u64, i64::MAX as u64 + 1, 1 << 63, MAX_SPAN_SECS as u64 + 1] {
            assert_eq!(secs(v), MAX_SPAN_SECS, "{v}");
        }
        let now = Utc::now();
        assert!(after(now, u64::MAX) > now + chrono::Duration::days(365 * 99));
        assert_eq!(after(DateTime::<Utc>::MAX_UTC, 1), DateTime::<Utc>::MAX_UTC);
        assert_eq!(after(now, 30), now + chrono::Duration::seconds(30));
    }
}
