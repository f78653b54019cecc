//! The binary under AWS Lambda: the handler name picks the job, the job's
//! configuration and clients are built once per execution environment, and
//! each invocation runs the job and logs its report and one EMF record.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio::time::Instant;

use crate::aws::error::ThrottleCounter;
use crate::jobs::{Job, egress, eip, routes, targets};
use crate::shared::config::{ConfigError, HANDLER, SharedConfig};
use crate::shared::limiter::WriteLimiter;
use crate::shared::report::{JobError, JobReport, Outcome};

/// Serves invocations until the runtime stops. A bad configuration fails
/// init, with the variable named in the log and in the error Lambda records.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    let job = Job::from_handler(std::env::var(HANDLER).ok().as_deref()).map_err(invalid_configuration)?;
    match job {
        Job::Routes => serve_routes().await,
        Job::Egress => serve_egress().await,
        Job::Targets => serve_targets().await,
        Job::Eip => serve_eip().await,
    }
}

async fn serve_eip() -> Result<(), lambda_runtime::Error> {
    let config = eip::config::Config::from_env().map_err(invalid_configuration)?;
    tracing::info!(job = "eip", vpc_id = %config.vpc_id, nodes = %config.node_tags, pool = %config.pool_tags,
                   dns = config.dns.is_some(), table = ?config.table, dry_run = config.dry_run, "kube-rtsync starting");
    let (sdk, ec2, throttled, limiter) = clients(&config).await?;
    // Route 53 meters record changes per account, apart from EC2: its own
    // counter and its own pace.
    let dns_throttled = throttled.service();
    let dns_limiter = WriteLimiter::new(eip::ROUTE53_WRITE_RATE).learning_from(dns_throttled.clone());
    let route53 = crate::aws::route53::AwsRoute53::new(crate::aws::sdk::route53_client(&sdk, dns_throttled));
    let bindings = crate::aws::dynamodb::AwsBindings::new(crate::aws::sdk::dynamodb_client(&sdk, throttled.service()));
    let namespace = config.metrics_namespace.clone();
    run(
        &throttled,
        |event, deadline| {
            let (ec2, route53, bindings, config, limiter, dns_limiter) =
                (&ec2, &route53, &bindings, &config, &limiter, &dns_limiter);
            async move {
                let reconciler = eip::Reconciler { ec2, route53, bindings, config, limiter, dns_limiter, deadline };
                eip::handle_event(&reconciler, &event).await
            }
        },
        |report, throttled, elapsed| eip::report::emf_record(&namespace, report, throttled, elapsed),
    )
    .await
}

async fn serve_targets() -> Result<(), lambda_runtime::Error> {
    let config = targets::config::Config::from_env().map_err(invalid_configuration)?;
    tracing::info!(job = "targets", vpc_id = %config.vpc_id, groups = config.target_group_arns.len(),
                   dry_run = config.dry_run, "kube-rtsync starting");
    let (sdk, ec2, throttled, limiter) = clients(&config).await?;
    let elbv2 = crate::aws::elbv2::AwsElbv2::new(crate::aws::sdk::elbv2_client(&sdk, throttled.service()));
    let namespace = config.metrics_namespace.clone();
    run(
        &throttled,
        |event, deadline| {
            let (ec2, elbv2, config, limiter) = (&ec2, &elbv2, &config, &limiter);
            async move {
                let reconciler = targets::Reconciler { ec2, elbv2, config, limiter, deadline };
                targets::handle_event(&reconciler, &event).await
            }
        },
        |report, throttled, elapsed| targets::report::emf_record(&namespace, report, throttled, elapsed),
    )
    .await
}

async fn serve_egress() -> Result<(), lambda_runtime::Error> {
    let config = egress::config::Config::from_env().map_err(invalid_configuration)?;
    tracing::info!(job = "egress", vpc_id = %config.vpc_id, tag = %config.tag_key, router_id = %config.router_id,
                   dry_run = config.dry_run, "kube-rtsync starting");
    let (_, ec2, throttled, limiter) = clients(&config).await?;
    let namespace = config.metrics_namespace.clone();
    run(
        &throttled,
        |event, deadline| {
            let (ec2, config, limiter) = (&ec2, &config, &limiter);
            async move {
                let reconciler = egress::Reconciler { ec2, config, limiter, deadline };
                egress::handle_event(&reconciler, &event).await
            }
        },
        |report, throttled, elapsed| egress::report::emf_record(&namespace, report, throttled, elapsed),
    )
    .await
}

async fn serve_routes() -> Result<(), lambda_runtime::Error> {
    let config = routes::config::Config::from_env().map_err(invalid_configuration)?;
    tracing::info!(job = "routes", vpc_id = %config.vpc_id, source = %config.source, managed_cidrs = %config.managed,
                   dry_run = config.dry_run, "kube-rtsync starting");
    let dimension = match (&config.cluster_name, &config.source) {
        (Some(cluster), _) => routes::report::Dimension::from(cluster.as_str()),
        (None, routes::config::SourceSelector::RouteTableId(id)) => routes::report::Dimension::source_table(id),
        (None, routes::config::SourceSelector::ClusterTag(name)) => routes::report::Dimension::from(name.as_str()),
    };
    let (_, ec2, throttled, limiter) = clients(&config).await?;
    let namespace = config.metrics_namespace.clone();
    run(
        &throttled,
        |event, deadline| {
            let (ec2, config, limiter) = (&ec2, &config, &limiter);
            async move {
                let reconciler = routes::Reconciler { ec2, config, limiter, deadline };
                routes::handle_event(&reconciler, &event).await
            }
        },
        |report, throttled, elapsed| {
            routes::report::emf_record(&namespace, dimension.clone(), report, throttled, elapsed)
        },
    )
    .await
}

/// The SDK configuration, from the environment.
async fn sdk_config() -> Result<aws_config::SdkConfig, lambda_runtime::Error> {
    Ok(crate::aws::sdk::config_loader(|name| std::env::var(name).ok()).map_err(invalid_configuration)?.load().await)
}

/// One EC2 client (with its throttle counter) and one write limiter for
/// the life of the execution environment.
/// The SDK configuration is loaded once (credential chain, region) and every
/// job's other clients are built from the same one.
async fn clients(
    config: &SharedConfig,
) -> Result<(aws_config::SdkConfig, crate::aws::ec2::AwsEc2, ThrottleCounter, WriteLimiter), lambda_runtime::Error> {
    let sdk = sdk_config().await?;
    let throttled = ThrottleCounter::default();
    let ec2_throttled = throttled.service();
    let ec2 = crate::aws::ec2::AwsEc2::new(crate::aws::sdk::ec2_client(&sdk, ec2_throttled.clone()));
    let limiter = WriteLimiter::new(config.write_rate).learning_from(ec2_throttled);
    Ok((sdk, ec2, throttled, limiter))
}

/// The invocation loop every job shares: run the job, log the report (or
/// the error), print the EMF record of any invocation that reconciled, and
/// answer Lambda with the report or the error.
async fn run<E, H, Fut, M>(throttled: &ThrottleCounter, handle: H, emf: M) -> Result<(), lambda_runtime::Error>
where
    E: JobError,
    E::Report: Send,
    H: Fn(Value, Option<Instant>) -> Fut,
    Fut: Future<Output = Result<E::Report, E>>,
    M: Fn(&E::Report, usize, Duration) -> Value,
{
    let (handle, emf) = (&handle, &emf);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = Instant::now();
        let throttled_before = throttled.count();
        let deadline = deadline_instant(event.context.deadline, now_ms());
        let result = handle(event.payload, deadline).await;
        let report = match &result {
            Ok(report) => Some(report),
            Err(err) => err.report(),
        };
        match (&result, report) {
            (Ok(_), Some(report)) => tracing::info!(report = %json(report), "report"),
            (Err(_), Some(report)) => tracing::error!(report = %json(report), "report"),
            (Err(err), None) => tracing::error!(error_type = err.kind(), error = %err, "invocation failed"),
            (Ok(_), None) => {}
        }
        if let Some(report) = report.filter(|r| r.outcome() != Outcome::NothingToDo) {
            // EMF records are plain JSON lines on stdout, beside the logs.
            println!(
                "{}",
                crate::shared::metrics::line(emf(report, throttled.count() - throttled_before, started.elapsed()))
            );
        }
        result.map_err(|err| lambda_runtime::Diagnostic {
            error_type: err.kind().to_owned(),
            error_message: err.to_string(),
        })
    }))
    .await
}

fn json<R: serde::Serialize>(report: &R) -> String {
    serde_json::to_string(report).unwrap_or_default()
}

fn invalid_configuration(err: ConfigError) -> lambda_runtime::Error {
    tracing::error!(variable = err.variable, error = %err, "invalid configuration");
    format!("invalid configuration: {err}").into()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
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
