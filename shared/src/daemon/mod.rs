//! The local daemon behind `kasm-autoscale run`: the same handlers as the Lambda functions in one
//! process — a schedule ticker (evaluate → provision → reap), the store's change feed (new claims
//! are provisioned at once), and an HTTP listener for webhooks, `/healthz`, `/metrics` and the status
//! page (`/` and `/status`, see [`status`]) (bounded: see [`listener`]; `/metrics` and the status page
//! may move to their own address and require a bearer token).
//!
//! Shutdown: stop taking work, give in-flight steps a grace period, then drop them. A dropped step
//! loses nothing: its claim is in the store and the next start's reaper finishes or undoes it.

pub mod listener;
pub mod metrics;
pub mod status;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::app::{self, Ctx, ProvisionOutcome};
use crate::model::InstanceState;
use crate::store::InstanceFilter;
use crate::webhook::{self, Trigger};
pub use metrics::{Metrics, Snapshot};
pub use status::StatusLog;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds between scheduled cycles.
    pub interval: Duration,
    /// Where the HTTP listener binds (`None` = no listener).
    pub listen: Option<SocketAddr>,
    /// Where `/metrics` and `/healthz` are served instead, when given (then the main listener serves
    /// webhooks and `/healthz` only).
    pub admin_listen: Option<SocketAddr>,
    /// Bounds of the listeners (connections, timeouts).
    pub limits: listener::Limits,
    /// Webhook secrets.
    pub keys: webhook::Keys,
    /// How long in-flight work may finish after a shutdown signal (the whole exit stays < 10 s).
    pub grace: Duration,
    /// Webhook triggers arriving within this window are coalesced into one evaluation.
    pub debounce: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_secs(30),
            listen: None,
            admin_listen: None,
            limits: listener::Limits::default(),
            keys: webhook::Keys::default(),
            grace: Duration::from_secs(7),
            debounce: Duration::from_secs(2),
        }
    }
}

#[derive(Clone)]
struct Http {
    ctx: Ctx,
    keys: webhook::Keys,
    metrics: Arc<Metrics>,
    status: Arc<StatusLog>,
    /// How often the status page polls `/status`, seconds.
    refresh: u64,
    triggers: mpsc::Sender<Trigger>,
    /// Whether this listener serves `/metrics` and the status page (false on the main listener when
    /// an admin one exists).
    serve_metrics: bool,
    /// Whether this listener takes webhooks (false on the admin listener).
    serve_webhooks: bool,
    body_timeout: Duration,
}

/// Runs until `shutdown` resolves. Returns the address the listener bound (for tests) through `bound`.
pub async fn run(
    ctx: Ctx,
    opts: Options,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let (trig_tx, mut trig_rx) = mpsc::channel::<Trigger>(256);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let status = Arc::new(StatusLog::default());

    let http = |serve_metrics: bool, serve_webhooks: bool| Http {
        ctx: ctx.clone(),
        keys: opts.keys.clone(),
        metrics: metrics.clone(),
        status: status.clone(),
        refresh: opts.interval.as_secs().clamp(2, 30),
        triggers: trig_tx.clone(),
        serve_metrics,
        serve_webhooks,
        body_timeout: opts.limits.body_timeout,
    };
    let mut listeners = Vec::new();
    if let Some(addr) = opts.listen {
        listeners.push((
            addr,
            http(opts.admin_listen.is_none(), true),
            "webhooks, /healthz, /metrics and the status page (/)",
        ));
    }
    if let Some(addr) = opts.admin_listen {
        listeners.push((addr, http(true, false), "/healthz, /metrics and the status page (/)"));
    }
    let mut bound = bound;
    for (addr, state, what) in listeners {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("failed to listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let what = if state.serve_webhooks && !state.serve_metrics { "webhooks and /healthz" } else { what };
        tracing::info!(%local, "listening for {what}");
        if let Some(b) = bound.take() {
            let _ = b.send(local);
        }
        let app = Router::new().fallback(route).with_state(state);
        tasks.spawn(listener::serve(listener, app, opts.limits, metrics.clone(), shutdown.clone()));
    }

    let workers = Arc::new(Semaphore::new(ctx.configs.settings.provisioning_workers.max(1) as usize));
    let mut feed = ctx.store.subscribe();
    let mut ticker = tokio::time::interval(opts.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cycle_running = Arc::new(tokio::sync::Mutex::new(()));

    loop {
        tokio::select! {
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
            _ = ticker.tick() => {
                spawn_cycle(&mut tasks, &ctx, &metrics, &status, &cycle_running, Trigger::All, "schedule");
            }
            Some(first) = trig_rx.recv() => {
                // Debounce: a burst of session events becomes one evaluation.
                let mut t = first;
                let deadline = tokio::time::sleep(opts.debounce);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        Some(more) = trig_rx.recv() => t = t.merge(more),
                    }
                }
                spawn_cycle(&mut tasks, &ctx, &metrics, &status, &cycle_running, t, "webhook");
            }
            change = recv_change(&mut feed) => {
                if let Some(c) = change
                    && c.old_state.is_none()
                    && c.new_state == InstanceState::Requested
                {
                    let ctx = ctx.clone();
                    let metrics = metrics.clone();
                    let status = status.clone();
                    let workers = workers.clone();
                    tasks.spawn(async move {
                        // At most `provisioning_workers` provider calls at once (Kasm: 10).
                        let Ok(_permit) = workers.acquire_owned().await else { return };
                        let r = app::provision(&ctx, &c.claim).await;
                        record(&ctx, &metrics, &status, &c.claim.to_string(), r);
                    });
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }

    tracing::info!(in_flight = tasks.len(), "shutting down: no new work; waiting for in-flight steps");
    let drained = tokio::time::timeout(opts.grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            "grace period over: abandoning in-flight steps (their claims are kept; the next start resumes them)"
        );
        tasks.abort_all();
    }
    Ok(())
}

async fn recv_change(
    feed: &mut Option<tokio::sync::broadcast::Receiver<crate::store::Change>>,
) -> Option<crate::store::Change> {
    match feed {
        Some(rx) => loop {
            match rx.recv().await {
                Ok(c) => return Some(c),
                // Missed some: the next cycle's provision_pending picks them up.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    *feed = None;
                    return None;
                }
            }
        },
        None => std::future::pending().await,
    }
}

fn record(ctx: &Ctx, metrics: &Metrics, status: &StatusLog, claim: &str, r: Result<ProvisionOutcome, app::AppError>) {
    metrics.record_provision(&r);
    status.record_provision(claim, &r, ctx.clock.now());
    match r {
        Ok(ProvisionOutcome::Retrying { error, .. } | ProvisionOutcome::Failed { error, .. }) => {
            tracing::warn!(claim, error, "provisioning did not succeed");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(claim, error = %e, "provisioning failed"),
    }
}

fn spawn_cycle(
    tasks: &mut JoinSet<()>,
    ctx: &Ctx,
    metrics: &Arc<Metrics>,
    status: &Arc<StatusLog>,
    running: &Arc<tokio::sync::Mutex<()>>,
    trigger: Trigger,
    why: &'static str,
) {
    if trigger == Trigger::None {
        return;
    }
    let Ok(guard) = running.clone().try_lock_owned() else {
        tracing::info!(why, "a cycle is still running; this trigger is folded into the next one");
        return;
    };
    let ctx = ctx.clone();
    let metrics = metrics.clone();
    let status = status.clone();
    tasks.spawn(async move {
        let _guard = guard;
        cycle(&ctx, &metrics, &status, trigger, why).await;
    });
}

/// One cycle: evaluate the triggered configs, provision what is pending, hand over Windows passwords, reap.
pub async fn cycle(ctx: &Ctx, metrics: &Metrics, status: &StatusLog, trigger: Trigger, why: &str) {
    let started = Instant::now();
    for o in app::evaluate_triggered(ctx, &trigger, why).await {
        metrics.record_evaluation(&o);
        let kind = ctx.configs.autoscale(&o.autoscale_config).map(|a| a.autoscale_type);
        status.record_evaluation(&o, kind, ctx.clock.now());
    }
    metrics.decision_latency(started.elapsed().as_secs_f64());
    for (claim, r) in app::provision_pending(ctx).await {
        record(ctx, metrics, status, claim.as_str(), r);
    }
    let pw = app::fetch_password(ctx).await;
    metrics.record_provider_errors(&pw.provider_errors);
    if !pw.set.is_empty() || !pw.errors.is_empty() {
        tracing::info!(set = pw.set.len(), errors = ?pw.errors, "windows password pass");
    }
    let rep = app::reap(ctx).await;
    metrics.record_provider_errors(&rep.provider_errors);
    if !rep.deleted.is_empty() || !rep.orphans_deleted.is_empty() || !rep.dns_orphans_deleted.is_empty() {
        tracing::info!(deleted = ?rep.deleted, orphans = ?rep.orphans_deleted, dns_orphans = ?rep.dns_orphans_deleted, "reaper pass");
    }
}

async fn route(State(st): State<Http>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let (method, path) = (&parts.method, parts.uri.path());
    let json =
        |status: StatusCode, body: String| (status, [("content-type", "application/json")], body).into_response();
    if method == Method::GET && path == "/healthz" {
        return json(StatusCode::OK, "{\"status\":\"ok\"}".to_string());
    }
    if method == Method::GET && path == "/" && st.serve_metrics {
        // The page holds no data (it fetches /status with the token), so it is not behind the token.
        let (csp, page) = &*status::PAGE_RESPONSE;
        return (
            StatusCode::OK,
            [
                ("content-type", "text/html; charset=utf-8"),
                ("content-security-policy", csp.as_str()),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
                ("cache-control", "no-cache"),
            ],
            *page,
        )
            .into_response();
    }
    if method == Method::GET && path == "/status" && st.serve_metrics {
        if let Some(denied) = unauthorized(&st, &parts.headers) {
            return denied;
        }
        let instances = st.ctx.store.list(&InstanceFilter::default()).await;
        let instances = match instances {
            Ok(i) => i,
            Err(e) => {
                let body = serde_json::json!({ "error": format!("the store could not be read: {e}") });
                return json(StatusCode::SERVICE_UNAVAILABLE, body.to_string());
            }
        };
        let view =
            st.status.view(&st.ctx.configs, &instances, &st.ctx.providers.failures(), st.refresh, st.ctx.clock.now());
        return (
            StatusCode::OK,
            [("content-type", "application/json"), ("cache-control", "no-store")],
            serde_json::to_string(&view).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        )
            .into_response();
    }
    if method == Method::GET && path == "/metrics" && st.serve_metrics {
        if let Some(denied) = unauthorized(&st, &parts.headers) {
            return denied;
        }
        let instances = st.ctx.store.list(&InstanceFilter::default()).await.unwrap_or_default();
        return (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            st.metrics.render(&instances, &st.ctx.providers.failures()),
        )
            .into_response();
    }
    if !st.serve_webhooks {
        return json(StatusCode::NOT_FOUND, "{\"text\":\"Not found\",\"code\":404}".to_string());
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    let now = st.ctx.clock.now();
    // Authenticate from the headers first: an unsigned request is refused before its body is read.
    if let Err(r) = webhook::preauthenticate(method.as_str(), path, &headers, &st.keys, now) {
        st.metrics.webhook(r.status);
        return json(StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED), r.body);
    }
    let limit = st.keys.body_limit();
    let body = match tokio::time::timeout(st.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            // The only error of an in-memory read is the limit (or the client going away).
            st.metrics.webhook(413);
            return json(StatusCode::PAYLOAD_TOO_LARGE, "{\"text\":\"Body too large\",\"code\":413}".to_string());
        }
        Err(_) => {
            st.metrics.webhook(408);
            return json(
                StatusCode::REQUEST_TIMEOUT,
                "{\"text\":\"Body not received in time\",\"code\":408}".to_string(),
            );
        }
    };
    let req = webhook::Request { method: method.as_str(), path, headers, body: &body };
    let resp = webhook::handle(&req, &st.keys, &st.ctx.configs, now);
    st.metrics.webhook(resp.status);
    if resp.trigger != Trigger::None && st.triggers.try_send(resp.trigger.clone()).is_err() {
        tracing::warn!("webhook trigger dropped: queue full (the schedule still evaluates)");
    }
    json(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), resp.body)
}

/// `None` when the request may read `/metrics` and `/status`: no `settings.webhook.metrics_token`, or
/// `Authorization: Bearer <it>` (compared in constant time); else the 401 answer.
fn unauthorized(st: &Http, headers: &axum::http::HeaderMap) -> Option<Response> {
    let token = st.keys.metrics_token.as_ref()?;
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ok = given
        .strip_prefix("Bearer ")
        .is_some_and(|g| bool::from(g.trim().as_bytes().ct_eq(token.expose_secret().as_bytes())));
    (!ok).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer")],
            "a bearer token is required (settings.webhook.metrics_token)\n",
        )
            .into_response()
    })
}
