//! A cache for expiring credentials (OAuth access tokens, Keystone tokens, vSphere sessions).
//!
//! - **Refresh before expiry**: a token expiring within `refresh_before` is fetched anew, so a request
//!   never leaves with a token that dies on the way.
//! - **Single flight**: the fetch runs under the cache's async lock, so concurrent callers that find
//!   the cache empty or stale wait for one fetch and share its token instead of each fetching.
//! - A failed fetch leaves the cache empty; the next caller tries again.

use secrecy::SecretString;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A credential and when it stops working.
#[derive(Debug, Clone)]
pub struct Token {
    /// The credential.
    pub value: SecretString,
    /// When it expires; `None` = never (until [`TokenCache::invalidate`]).
    pub expires_at: Option<Instant>,
}

impl Token {
    /// A token valid for `ttl` from now.
    pub fn expiring_in(value: SecretString, ttl: Duration) -> Self {
        Token { value, expires_at: Some(Instant::now() + ttl) }
    }
}

/// Caches one [`Token`]; see the module docs.
#[derive(Debug)]
pub struct TokenCache {
    refresh_before: Duration,
    slot: Mutex<Option<Token>>,
}

impl TokenCache {
    /// A cache that refetches tokens expiring within `refresh_before`.
    pub fn new(refresh_before: Duration) -> Self {
        TokenCache { refresh_before, slot: Mutex::new(None) }
    }

    /// The cached token's value when it is still fresh, otherwise the value of a token from `fetch`
    /// (which is then cached). Only one `fetch` runs at a time.
    pub async fn get_or_fetch<F, Fut, E>(&self, fetch: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        // Held across the fetch on purpose: that is what makes it single-flight.
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref()
            && self.is_fresh(t)
        {
            return Ok(t.value.clone());
        }
        *slot = None;
        let t = fetch().await?;
        let v = t.value.clone();
        // Every token is a secret the exits must scrub (see `redact::remember`).
        super::redact::remember(&v);
        *slot = Some(t);
        Ok(v)
    }

    /// Forgets the cached token (e.g. after the server answered 401 with it).
    pub async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }

    fn is_fresh(&self, t: &Token) -> bool {
        match t.expires_at {
            None => true,
            Some(at) => Instant::now() + self.refresh_before < at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fetcher(
        n: Arc<AtomicUsize>,
        ttl: Duration,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<Token, String>> + Send>> {
        move || {
            Box::pin(async move {
                // Slow enough that concurrent callers pile up behind the first fetch.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let i = n.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Token::expiring_in(SecretString::from(format!("tok-{i}")), ttl))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_fetch_once() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(60)));
        let n = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, n) = (cache.clone(), n.clone());
                tokio::spawn(async move {
                    cache.get_or_fetch(fetcher(n, Duration::from_secs(3600))).await.unwrap().expose_secret().to_string()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "tok-1");
        }
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_before_expiry() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let n = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(300);
        let v = cache.get_or_fetch(fetcher(n.clone(), ttl)).await.unwrap();
        assert_eq!(v.expose_secret(), "tok-1");
        // Fresh: 300 s validity, 60 s margin.
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(cache.get_or_fetch(fetcher(n.clone(), ttl)).await.unwrap().expose_secret(), "tok-1");
        // Within the margin of expiry (still valid, but not for long): fetched anew.
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(cache.get_or_fetch(fetcher(n.clone(), ttl)).await.unwrap().expose_secret(), "tok-2");
        cache.invalidate().await;
        assert_eq!(cache.get_or_fetch(fetcher(n.clone(), ttl)).await.unwrap().expose_secret(), "tok-3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_is_not_cached() {
        let cache = TokenCache::new(Duration::ZERO);
        let r: Result<SecretString, String> = cache.get_or_fetch(|| async { Err("down".to_string()) }).await;
        assert_eq!(r.unwrap_err(), "down");
        let n = Arc::new(AtomicUsize::new(0));
        assert_eq!(cache.get_or_fetch(fetcher(n, Duration::from_secs(10))).await.unwrap().expose_secret(), "tok-1");
    }
}
