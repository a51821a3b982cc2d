//! Logging set-up (`tracing`): human-readable or JSON lines on stderr, filtered by `RUST_LOG`
//! or the configured level. Nothing is logged per event: at high rates that costs more than
//! the work. Requests are logged one line each only with `log.access` (the access log).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::core::config::LogSettings;

/// Installs the global subscriber; a second call does nothing.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes are for people at a terminal; in a file or a log collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _already_set = if settings.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
