//! Log set-up following Lambda's advanced logging controls:
//! `AWS_LAMBDA_LOG_FORMAT=JSON` gives one JSON object per line (what the
//! SAM template configures), `AWS_LAMBDA_LOG_LEVEL` or else `RUST_LOG` sets
//! the level (default `info`). Text logs carry colour only on a terminal,
//! so that CloudWatch never stores escape codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The command line's logs: to stderr (stdout carries the plan or the
/// report), warnings only unless `RUST_LOG` says otherwise.
pub fn init_cli() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .parse_lossy(std::env::var("RUST_LOG").unwrap_or_default());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter =
        EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).parse_lossy(level.to_ascii_lowercase());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).without_time();
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stdout().is_terminal()).init();
    }
}
