//! The `kube-rtsync` binary: wiring only. Under AWS Lambda (when
//! `AWS_LAMBDA_RUNTIME_API` is set) it serves invocations; elsewhere it is
//! the `plan` / `sync` command line.
// The SDK and runtime futures nest deeply; the layout query needs room.
#![recursion_limit = "256"]

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube_rtsync::config::{Config, ConfigError};
use kube_rtsync::ec2::{AwsEc2, ThrottleCounter};
use kube_rtsync::limiter::WriteLimiter;
use kube_rtsync::metrics::{self, emf_record};
use kube_rtsync::sync::{Reconciler, handle_event};
use kube_rtsync::{Error, report::Report};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        kube_rtsync::logging::init_cli();
        return kube_rtsync::cli::run().await;
    }
    kube_rtsync::logging::init();
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kube-rtsync: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env().map_err(invalid_configuration)?;
    tracing::info!(vpc_id = %config.vpc_id, source = %config.source, managed_cidrs = %config.managed,
                   dry_run = config.dry_run, "kube-rtsync starting");
    let namespace = std::env::var(metrics::METRICS_NAMESPACE).unwrap_or_else(|_| metrics::DEFAULT_NAMESPACE.to_owned());
    let cluster = config.cluster_name.clone().unwrap_or_else(|| config.source.to_string());

    // One SDK client for the life of the execution environment.
    let sdk_config =
        kube_rtsync::sdk::config_loader(|name| std::env::var(name).ok()).map_err(invalid_configuration)?.load().await;
    let throttled = ThrottleCounter::default();
    let ec2 = AwsEc2::new(kube_rtsync::sdk::ec2_client(&sdk_config, throttled.clone()));
    let limiter = WriteLimiter::new(config.write_rate);

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let reconciler = Reconciler {
            ec2: &ec2,
            config: &config,
            limiter: &limiter,
            deadline: deadline_instant(event.context.deadline),
        };
        let (namespace, cluster, throttled) = (&namespace, &cluster, &throttled);
        async move {
            let started = Instant::now();
            let throttled_before = throttled.count();
            let result = handle_event(&reconciler, &event.payload).await;
            log_result(&result);
            let report = match &result {
                Ok(report) => Some(report),
                Err(Error::Incomplete(report)) => Some(&**report),
                Err(_) => None,
            };
            if let Some(report) = report.filter(|r| r.outcome != kube_rtsync::report::Outcome::NothingToDo) {
                let record =
                    emf_record(namespace, cluster, report, throttled.count() - throttled_before, started.elapsed());
                // EMF records are plain JSON lines on stdout, beside the logs.
                println!("{record}");
            }
            result
        }
    }))
    .await
}

/// A bad configuration fails init, with the variable named in the log and
/// in the error Lambda records.
fn invalid_configuration(err: ConfigError) -> lambda_runtime::Error {
    tracing::error!(variable = err.variable, error = %err, "invalid configuration");
    Error::Config(err).into()
}

/// Lambda gives the deadline as milliseconds since the epoch.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.checked_sub(now_ms)?))
}

fn log_result(result: &Result<Report, Error>) {
    match result {
        Ok(report) => {
            tracing::info!(report = %serde_json::to_string(report).unwrap_or_default(), "report")
        }
        Err(Error::Incomplete(report)) => {
            tracing::error!(report = %serde_json::to_string(report).unwrap_or_default(), "report")
        }
        Err(err) => tracing::error!(error_type = err.kind(), error = %err, "invocation failed"),
    }
}
