//! The binary under AWS Lambda: the handler name picks the job, the job's
//! configuration and clients are built once per execution environment, and
//! each invocation runs the job and logs its report and one EMF record. One
//! loop for every job: [`serve_job`] runs any [`Job`].

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio::time::Instant;

use crate::aws::events::AwsEventBridge;
use crate::aws::sdk::{HttpsClient, Service};
use crate::jobs::{JobName, egress, eip, routes, targets};
use crate::shared::changes::Arns;
use crate::shared::config::{ConfigError, HANDLER};
use crate::shared::job::{EventsTo, Job, Run, Throttles, publish_changes};
use crate::shared::metrics::Invocation;
use crate::shared::report::{JobError, JobReport, Outcome};

/// Serves invocations until the runtime stops. A bad configuration fails
/// init, with the variable named in the log and in the error Lambda records.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    match JobName::from_handler(std::env::var(HANDLER).ok().as_deref()).map_err(invalid_configuration)? {
        JobName::Routes => serve_job::<routes::Routes>().await,
        JobName::Egress => serve_job::<egress::Egress>().await,
        JobName::Targets => serve_job::<targets::Targets>().await,
        JobName::Eip => serve_job::<eip::Eip>().await,
    }
}

/// Init once (the configuration, the SDK configuration, the clients, the
/// write pace), then the invocation loop every job shares: run the job, log
/// the report (or the error), print the EMF record of any invocation that
/// reconciled, and answer Lambda with the report or the error.
pub async fn serve_job<J: Job>() -> Result<(), lambda_runtime::Error> {
    let config = J::config(&|name| std::env::var(name).ok()).map_err(invalid_configuration)?;
    tracing::info!(job = J::NAME, version = crate::VERSION, "kube-rtsync");
    J::starting(&config);
    let https = HttpsClient::from_lookup(|name| std::env::var(name).ok()).map_err(invalid_configuration)?;
    let sdk = crate::aws::sdk::config_loader_with(https.clone()).load().await;
    let throttles = Throttles::new();
    let clients = J::clients(&sdk, &throttles);
    let events = config
        .event_bus
        .as_ref()
        .map(|_| AwsEventBridge::new(crate::aws::sdk::eventbridge_client(&sdk, throttles.total.service())));
    warm_up::<J>(&https, &sdk, &config).await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let limiter = throttles.ec2_limiter(&config);
    let (clients, config, limiter, throttled) = (&clients, &config, &limiter, &throttles.total);
    let (events, region) = (&events, &region);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = Instant::now();
        let throttled_before = throttled.count();
        let deadline = deadline_instant(event.context.deadline, crate::shared::clock::now_ms());
        let run = Run::<J> { clients, config, limiter, deadline };
        let result = crate::shared::job::handle::<J>(run, &event.payload).await;
        let report = match &result {
            Ok(report) => Some(report),
            Err(err) => err.report(),
        };
        let arns = Arns::from_function_arn(&event.context.invoked_function_arn)
            .unwrap_or_else(|| Arns::in_region(region, std::env::var("AWS_ACCOUNT_ID").ok()));
        let to = events.as_ref().map(|bus| EventsTo { bus, arns: &arns, invocation_id: &event.context.request_id });
        let published = publish_changes(J::NAME, config, report, to.as_ref(), deadline).await;
        match (&result, report) {
            (Ok(_), Some(report)) => tracing::info!(report = %json(report), "report"),
            (Err(err), Some(report)) => tracing::error!(
                error_type = err.kind(),
                retryable = err.retryable(),
                report = %json(report),
                "report"
            ),
            (Err(err), None) => {
                tracing::error!(error_type = err.kind(), retryable = err.retryable(), error = %err, "invocation failed")
            }
            (Ok(_), None) => {}
        }
        if let Some(report) = report.filter(|r| r.outcome() != Outcome::NothingToDo) {
            let run = Invocation {
                throttled: throttled.count() - throttled_before,
                events: published,
                duration: started.elapsed(),
            };
            let record = J::emf(config, report, &run);
            // EMF records are plain JSON lines on stdout, beside the logs.
            println!("{}", crate::shared::metrics::line(record));
        }
        result.map_err(|err| diagnostic(&err))
    }))
    .await
}

/// Makes the TLS set-up and opens, during init (where Lambda does not
/// throttle the CPU), the connections the first invocation will use,
/// within `WARM_UP_MS`: the job's own and one for the change events. What
/// could not be opened in time is logged and left to the first calls.
async fn warm_up<J: Job>(https: &HttpsClient, sdk: &aws_config::SdkConfig, config: &J::Config) {
    // The TLS set-up is made during init whatever the budget.
    https.prepare();
    if config.warm_up.is_zero() {
        return;
    }
    let mut connections = J::connections(config);
    if config.event_bus.is_some() {
        connections.push((Service::EventBridge, 1));
    }
    let urls = crate::aws::sdk::warm_up_urls(sdk, &connections).await;
    let warm = https.warm_up(&urls, config.warm_up).await;
    tracing::info!(
        opened = warm.opened,
        failed = warm.failed,
        took_ms = warm.took.as_secs_f64() * 1000.0,
        "connections opened during init"
    );
}

/// What Lambda records of a failed invocation: the error's stable kind as
/// `errorType`, its message as `errorMessage`. One mapping for every job.
pub fn diagnostic<E: JobError>(err: &E) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic { error_type: err.kind().to_owned(), error_message: err.to_string() }
}

fn json<R: serde::Serialize>(report: &R) -> String {
    serde_json::to_string(report).unwrap_or_default()
}

fn invalid_configuration(err: ConfigError) -> lambda_runtime::Error {
    tracing::error!(variable = err.variable, error = %err, "invalid configuration");
    format!("invalid configuration: {err}").into()
}

/// Deadlines below this (milliseconds) cannot be an epoch time of this
/// century (10^12 ms is September 2001).
pub const EPOCH_DEADLINE_FLOOR_MS: u64 = 1_000_000_000_000;

/// Lambda gives the deadline as milliseconds since the epoch. A deadline
/// already past means no time is left (never "no deadline"): nothing new
/// may start. cargo-lambda's emulator sends a duration instead (its
/// `Lambda-Runtime-Deadline-Ms` is the function timeout, 600000): a value
/// that cannot be an epoch time of this century is read as milliseconds
/// from now, and logged once.
pub fn deadline_instant(deadline_ms: u64, now_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    if deadline_ms < EPOCH_DEADLINE_FLOOR_MS {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(
                deadline_ms,
                "the Runtime API sent a deadline that is no epoch time (a local emulator's duration): read as {deadline_ms} ms from now"
            )
        });
        return Some(Instant::now() + Duration::from_millis(deadline_ms));
    }
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_the_future_leaves_that_much_time() {
        let deadline = deadline_instant(1_800_000_060_000, 1_800_000_000_000).unwrap();
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60), "{left:?}");
    }

    #[test]
    fn a_duration_from_a_local_emulator_is_read_as_time_from_now() {
        // cargo-lambda's emulator sends the timeout itself: 600000.
        let deadline = deadline_instant(600_000, 1_800_000_000_000).expect("a deadline");
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(599) && left <= Duration::from_secs(600), "{left:?}");
    }

    #[test]
    fn a_deadline_already_past_leaves_no_time_rather_than_none() {
        let deadline = deadline_instant(1_800_000_000_000, 1_800_000_005_000).expect("a deadline, not none");
        assert_eq!(deadline.saturating_duration_since(Instant::now()), Duration::ZERO);
    }
}
