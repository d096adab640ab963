//! Log set-up: JSON lines by default (one structured line per decision), text for humans.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Installs the subscriber on stderr, remembered secrets scrubbed from every line
/// ([`shared::http::ScrubLines`]). `RUST_LOG` (`target=level` directives) overrides
/// `default_level`; libraries never log below `info` (see [`shared::wiring::log_filter`]: their debug
/// output carries request contents, secrets among them).
pub fn init(format: Format, default_level: &str) {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let (filter, problem) = shared::wiring::log_filter(None, Some(rust_log.as_deref().unwrap_or(default_level)));
    let registry = tracing_subscriber::registry().with(filter);
    // Colour only on a terminal: a redirected log file gets plain text, not escape codes.
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| shared::http::ScrubLines::new(std::io::stderr()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        Format::Json => registry.with(layer.json().flatten_event(true)).try_init(),
        Format::Text => registry.with(layer).try_init(),
    };
    if let Some(p) = problem {
        tracing::warn!("{p}");
    }
}
