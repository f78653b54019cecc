//! The `egress` job: keeps each enrolled private route table's default
//! route on a healthy NAT, its own zone's when it can, failing over and
//! back, with the tags of `aws-nat-router`.
//!
//! Rooms: [`config`] (its variables), [`model`] and [`health`] (NATs and
//! tables, pure health rules), [`observe`] (one round trip of describes),
//! [`plan`] (pure, time as an argument), [`apply`] (writes through the
//! shared engine), [`report`].

pub mod apply;
pub mod config;
pub mod health;
pub mod model;
pub mod observe;
pub mod plan;
pub mod report;

use crate::aws::sdk::Service;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::ec2::{Instances, LeavingInstances, Nats, RouteTables};
use crate::shared::apply::{Engine, Phases};
use crate::shared::event::Trigger;
use crate::shared::limiter::WriteLimiter;
use config::Config;
use model::Settings;
use report::Report;

/// Why an egress invocation failed: only the shared failures, egress has
/// no problem of its own (a table it cannot route is reported, not failed).
pub type Error = crate::shared::error::Failure<Problem>;

/// Egress's own problems: none.
#[derive(Debug, thiserror::Error)]
pub enum Problem {}

impl crate::shared::error::Problem for Problem {
    type Report = Report;
    const READS: &'static str = "the route tables and NATs";

    fn kind(&self) -> &'static str {
        match *self {}
    }

    fn retryable(&self) -> bool {
        match *self {}
    }

    fn incomplete(report: &Report) -> String {
        format!(
            "egress incomplete: {} writes failed, {} not started; Lambda retries the invocation",
            report.totals.failed, report.totals.not_started
        )
    }
}

/// What a reconcile needs besides EC2.
pub struct Reconciler<'a, E> {
    pub ec2: &'a E,
    pub config: &'a Config,
    pub limiter: &'a WriteLimiter,
    pub deadline: Option<Instant>,
}

/// One invocation (through [`crate::shared::job::handle_event`]). Any
/// instance's state change costs one reconcile.
impl<E: RouteTables + Instances + Nats + LeavingInstances> crate::shared::job::Reconcile for Reconciler<'_, E> {
    type Report = Report;
    type Error = Error;

    fn nothing_to_do(&self, triggers: Vec<Trigger>) -> Report {
        let config = self.config;
        Report::new(triggers, &config.vpc_id, &config.router_id, config.dry_run)
    }

    async fn invoke(&self, triggers: Vec<Trigger>, now: u64) -> Result<Report, Error> {
        self.run(triggers, now).await
    }
}

/// The egress job on the AWS SDK's EC2 client.
pub struct Egress;

impl crate::shared::job::Job for Egress {
    const NAME: &'static str = "egress";
    type Config = Config;
    type Clients = crate::aws::ec2::AwsEc2;
    type Report = Report;
    type Problem = Problem;

    fn starting(config: &Config) {
        info!(job = "egress", vpc_id = %config.vpc_id, tag = %config.tag_key, router_id = %config.router_id,
              dry_run = config.dry_run, "kube-rtsync starting");
    }

    fn clients(sdk: &aws_config::SdkConfig, throttles: &crate::shared::job::Throttles) -> Self::Clients {
        crate::aws::ec2::AwsEc2::new(crate::aws::sdk::ec2_client(sdk, throttles.ec2.clone()))
    }

    fn connections(_config: &Config) -> Vec<(Service, usize)> {
        // Tables, subnets, instances, NAT gateways, two status checks and
        // the two leaving reads, at once (observe.rs).
        vec![(Service::Ec2, 8)]
    }

    type Reconciler<'a> = Reconciler<'a, crate::aws::ec2::AwsEc2>;

    fn reconciler(run: crate::shared::job::Run<'_, Self>) -> Reconciler<'_, crate::aws::ec2::AwsEc2> {
        Reconciler { ec2: run.clients, config: run.config, limiter: run.limiter, deadline: run.deadline }
    }

    fn emf(config: &Config, report: &Report, run: &crate::shared::metrics::Invocation) -> Value {
        report::emf_record(&config.metrics_namespace, report, run)
    }
}

impl<E: RouteTables + Instances + Nats + LeavingInstances> Reconciler<'_, E> {
    /// [`Self::reconcile`], and an error when the report is incomplete, so
    /// that Lambda retries.
    pub async fn run(&self, triggers: Vec<Trigger>, now: u64) -> Result<Report, Error> {
        Error::unless_incomplete(self.reconcile(triggers, now).await?)
    }

    /// Observes, plans (at `now`, epoch seconds) and applies. Failures of
    /// single writes are in the report; a failed describe is an error
    /// before any write.
    pub async fn reconcile(&self, triggers: Vec<Trigger>, now: u64) -> Result<Report, Error> {
        let config = self.config;
        let mut observed = observe::observe(self.ec2, config, self.deadline).await.map_err(Error::Describe)?;
        let settings = Settings {
            failback_seconds: config.failback_seconds,
            fix_source_dest_check: config.fix_source_dest_check,
            probe_enabled: config.probe_port.is_some(),
            regional_fallback: config.regional_fallback,
        };
        let engine = Engine::new(self.limiter, self.deadline, 16);
        let mut phases = Phases::new(&engine, "egress", config.dry_run);
        // Rule 1: fix first, then plan with what the fixes achieved, so that
        // no table is routed to an instance that still cannot forward.
        let fixes = plan::source_dest_fixes(&observed.nats, &settings);
        let fixed = apply::fix_source_dest_checks(self.ec2, &mut phases, &fixes, config.destination).await;
        let fixed: Vec<&str> = fixed.iter().map(String::as_str).collect();
        plan::with_source_dest_fixed(&mut observed.nats, &fixed);
        let mut plan = plan::plan(&observed.tables, &observed.nats, &settings, now);
        plan.source_dest_fixes = fixes;
        info!(tables = plan.tables.len(), nats = plan.nats.len(), "egress plan:\n{plan}");
        if plan.without_healthy_nat() > 0 {
            warn!(
                tables = plan.without_healthy_nat(),
                "tables without a healthy NAT; nothing can be done for them now"
            );
        }
        if plan.left_alone() > 0 {
            warn!(tables = plan.left_alone(), "tables left alone: their default route is not this job's to move");
        }
        apply::apply(self.ec2, &mut phases, &plan, config.destination).await;
        let mut writes = phases.results();
        writes.sort_by(|a, b| (&a.resource, &a.change).cmp(&(&b.resource, &b.change)));
        let mut report = Report::new(triggers, &config.vpc_id, &config.router_id, config.dry_run);
        report.plan = plan;
        report.writes = writes;
        Ok(report.finish())
    }
}
