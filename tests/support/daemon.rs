//! The real `kasm-autoscale run` as a child process, for the daemon-loop tests of every provider.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running daemon, killed when dropped (a failing test leaves no process behind).
#[derive(Debug)]
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// Sends SIGTERM and returns the exit code, failing the test if the daemon still runs 10 s later.
    pub async fn terminate(&mut self) -> Option<i32> {
        let killed = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        status.code()
    }
}

/// Polls `f` every 200 ms until it holds; fails the test naming `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
