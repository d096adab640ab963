//! `kasm-autoscale run --config FILE... [--state PATH] [--listen ADDR] [--interval SECONDS]`: the local
//! daemon. SIGTERM/SIGINT stop it within 10 s; restarting resumes from the state file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shared::daemon::{self, Metrics, Options};
use shared::secrets::LocalSecrets;
use shared::wiring;

use crate::configs;

/// Where the daemon listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// Webhooks, /healthz (and /metrics when `admin` is not given).
    pub main: SocketAddr,
    /// /metrics and /healthz on their own address.
    pub admin: Option<SocketAddr>,
}

/// Runs the daemon until a signal.
pub async fn run(files: &[PathBuf], state: &Path, listen: Listen, interval: Option<u64>, err: &mut dyn Write) -> i32 {
    let store = match wiring::open_store(&state.display().to_string()) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let set = match configs::from_files_or_store(files, store.as_ref(), err).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let secrets = Arc::new(LocalSecrets);
    let built = async {
        let kasm = wiring::kasm(&set, secrets.as_ref()).await?;
        let providers = wiring::providers(&set, secrets.clone());
        let keys = wiring::webhook_keys(&set, secrets.as_ref()).await?;
        Ok::<_, wiring::WireError>((kasm, providers, keys))
    };
    let (kasm, providers, keys) = match built.await {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    // A config whose provider cannot be built fails alone: said now, and the others run.
    for (name, e) in providers.failures() {
        let _ = writeln!(err, "warning: VM-provider config {name}: {e}; its claims back off, the other configs run");
    }
    if let Err(e) = store.save_configs(&set).await {
        let _ = writeln!(err, "error: {e}");
        return 1;
    }
    let interval = Duration::from_secs(interval.unwrap_or(set.settings.evaluation_interval).max(1));
    let held = providers.clone();
    let ctx = wiring::local_ctx(set, store, kasm, providers, secrets).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: stopping");
        let _ = stop_tx.send(true);
    });
    let opts = Options { interval, listen: Some(listen.main), admin_listen: listen.admin, keys, ..Options::default() };
    let result = daemon::run(ctx, opts, Arc::new(Metrics::default()), stop_rx, None).await;
    // Sessions opened on the far side (vSphere) are closed, not left to expire.
    held.shutdown().await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
