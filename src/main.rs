//! The `kube-rtsync` Lambda function: wiring only.
// The SDK and runtime futures nest deeply; the layout query needs room.
#![recursion_limit = "256"]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube_rtsync::config::Config;
use kube_rtsync::ec2::AwsEc2;
use kube_rtsync::limiter::WriteLimiter;
use kube_rtsync::sync::{Reconciler, handle_event};
use kube_rtsync::{Error, report::Report};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kube_rtsync::logging::init();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(variable = err.variable, error = %err, "invalid configuration");
            return Err(Error::Config(err).into());
        }
    };
    tracing::info!(vpc_id = %config.vpc_id, source = %config.source, managed_cidrs = %config.managed,
                   dry_run = config.dry_run, "kube-rtsync starting");

    // One SDK client for the life of the execution environment.
    let sdk_config = aws_config::load_from_env().await;
    let ec2 = AwsEc2::new(aws_sdk_ec2::Client::new(&sdk_config));
    let limiter = WriteLimiter::new(config.write_rate);

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let reconciler = Reconciler {
            ec2: &ec2,
            config: &config,
            limiter: &limiter,
            deadline: deadline_instant(event.context.deadline),
        };
        async move {
            let result = handle_event(&reconciler, &event.payload).await;
            log_result(&result);
            result
        }
    }))
    .await
}

/// Lambda gives the deadline as milliseconds since the epoch.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
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
