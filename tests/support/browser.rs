//! Headless Chromium (Debian's `chromium` package) for the tests of pages the daemon serves: loads a
//! URL, lets its scripts run, and returns the DOM as they left it (`--dump-dom`).
//!
//! The browser is `$CHROMIUM`, else `chromium` or `chromium-browser` on the `PATH`. `.ci/test` installs
//! it (`apt-get install chromium`) when it is missing and it can. Without one a test fails, naming what
//! to install — it does not pass silently — unless `KASM_AUTOSCALE_NO_BROWSER=1` says to skip
//! browser tests on purpose (then [`dump_dom`] returns `None` and the test says it skipped).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The Chromium binary, if any.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n))).find(|p| p.is_file())
}

/// Loads `url` in a fresh headless Chromium (its own empty profile), lets the page run for up to
/// `budget` of virtual time (network waits do not count), and returns the DOM. `None` only when
/// `KASM_AUTOSCALE_NO_BROWSER=1` and there is no browser; any other failure fails the test.
pub fn dump_dom(url: &str, budget: Duration) -> Option<String> {
    let Some(bin) = chromium() else {
        if std::env::var("KASM_AUTOSCALE_NO_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped: no Chromium and KASM_AUTOSCALE_NO_BROWSER=1");
            return None;
        }
        panic!(
            "this test needs headless Chromium: `apt-get install chromium` (Debian), or set CHROMIUM=/path/to/it; \
             KASM_AUTOSCALE_NO_BROWSER=1 skips browser tests on purpose"
        );
    };
    let profile = tempfile::tempdir().expect("a profile directory");
    // The flags keep Chromium off the network but for the page (no background requests, which a
    // closed machine refuses), without a sandbox (tests run as root in CI) or a GPU.
    let out = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "{} --dump-dom {url} failed ({}):\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dom)
}
