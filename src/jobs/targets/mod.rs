//! The `targets` job: keeps hand-made NLB target groups holding exactly
//! the running nodes, reconciling from EC2 and ELBv2 state.
//!
//! Rooms: [`config`] (its variables and `node-nlb-sync`'s names),
//! [`model`] (groups, registrations, which instances are nodes),
//! [`plan`] (pure), [`apply`] (batched calls through the shared engine),
//! [`observe`] (one round trip), [`report`].

pub mod apply;
pub mod config;
pub mod model;
pub mod observe;
pub mod plan;
pub mod report;

use crate::aws::sdk::Service;
use serde_json::Value;
use tokio::time::Instant;
use tracing::info;

use crate::aws::ec2::{Instances, LeavingInstances};
use crate::aws::elbv2::Elbv2;
use crate::shared::apply::Engine;
use crate::shared::event::Trigger;
use crate::shared::limiter::WriteLimiter;
use config::Config;
use model::TargetGroup;
use plan::GroupProblem;
use report::Report;

/// Why a targets invocation failed: the shared failures and targets' own
/// problem (target groups that are not what the configuration says).
pub type Error = crate::shared::error::Failure<Problem>;

/// What stops the targets job before it writes.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("nothing changed: {}; check TARGET_GROUP_ARNS", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidTargetGroups(Vec<GroupProblem>),
}

impl crate::shared::error::Problem for Problem {
    type Report = Report;
    const READS: &'static str = "the target groups and instances";

    fn kind(&self) -> &'static str {
        match self {
            Problem::InvalidTargetGroups(_) => "InvalidTargetGroup",
        }
    }

    /// The configuration or the groups must change first.
    fn retryable(&self) -> bool {
        false
    }

    fn incomplete(report: &Report) -> String {
        let t = &report.totals;
        format!(
            "targets incomplete in {} of {} groups: {} calls failed, {} not started; Lambda retries the invocation",
            t.groups_failed, t.groups, t.failed, t.not_started
        )
    }
}

/// What a reconcile needs besides EC2 and ELBv2.
pub struct Reconciler<'a, E, L> {
    pub ec2: &'a E,
    pub elbv2: &'a L,
    pub config: &'a Config,
    pub limiter: &'a WriteLimiter,
    pub deadline: Option<Instant>,
}

/// One invocation (through [`crate::shared::job::handle_event`]).
impl<E: Instances + LeavingInstances, L: Elbv2> crate::shared::job::Reconcile for Reconciler<'_, E, L> {
    type Report = Report;
    type Error = Error;

    fn nothing_to_do(&self, triggers: Vec<Trigger>) -> Report {
        Report::new(triggers, &self.config.vpc_id, self.config.dry_run)
    }

    async fn invoke(&self, triggers: Vec<Trigger>, _now: u64) -> Result<Report, Error> {
        self.run(triggers).await
    }
}

/// The targets job's clients on the AWS SDK.
pub struct Clients {
    pub ec2: crate::aws::ec2::AwsEc2,
    pub elbv2: crate::aws::elbv2::AwsElbv2,
}

/// The targets job on the AWS SDK's EC2 and ELBv2 clients.
pub struct Targets;

impl crate::shared::job::Job for Targets {
    const NAME: &'static str = "targets";
    type Config = Config;
    type Clients = Clients;
    type Report = Report;
    type Problem = Problem;

    fn starting(config: &Config) {
        info!(job = "targets", vpc_id = %config.vpc_id, groups = config.target_group_arns.len(),
              dry_run = config.dry_run, "kube-rtsync starting");
    }

    fn clients(sdk: &aws_config::SdkConfig, throttles: &crate::shared::job::Throttles) -> Clients {
        Clients {
            ec2: crate::aws::ec2::AwsEc2::new(crate::aws::sdk::ec2_client(sdk, throttles.ec2.clone())),
            elbv2: crate::aws::elbv2::AwsElbv2::new(crate::aws::sdk::elbv2_client(sdk, throttles.total.service())),
        }
    }

    fn connections(config: &Config) -> Vec<(Service, usize)> {
        // Instances and the two leaving reads; the groups' descriptions and
        // each group's health, at once (observe.rs).
        let groups = config.target_group_arns.len();
        vec![(Service::Ec2, 3), (Service::Elbv2, groups.div_ceil(observe::GROUPS_PER_DESCRIBE) + groups)]
    }

    type Reconciler<'a> = Reconciler<'a, crate::aws::ec2::AwsEc2, crate::aws::elbv2::AwsElbv2>;

    fn reconciler(run: crate::shared::job::Run<'_, Self>) -> Self::Reconciler<'_> {
        Reconciler {
            ec2: &run.clients.ec2,
            elbv2: &run.clients.elbv2,
            config: run.config,
            limiter: run.limiter,
            deadline: run.deadline,
        }
    }

    fn emf(config: &Config, report: &Report, run: &crate::shared::metrics::Invocation) -> Value {
        report::emf_record(&config.metrics_namespace, report, run)
    }
}

impl<E: Instances + LeavingInstances, L: Elbv2> Reconciler<'_, E, L> {
    /// [`Self::reconcile`], and an error when the report is incomplete, so
    /// that Lambda retries.
    pub async fn run(&self, triggers: Vec<Trigger>) -> Result<Report, Error> {
        Error::unless_incomplete(self.reconcile(triggers).await?)
    }

    pub async fn reconcile(&self, triggers: Vec<Trigger>) -> Result<Report, Error> {
        let config = self.config;
        let (groups, instances) = self.observe().await?;
        let found: Vec<TargetGroup> = groups.iter().map(|(g, _)| g.clone()).collect();
        plan::check_groups(&config.target_group_arns, &found, &config.vpc_id)
            .map_err(|problems| Error::Job(Problem::InvalidTargetGroups(problems)))?;
        let plan = plan::plan(&groups, &instances, &config.nodes, &config.vpc_id);
        if plan.is_empty() {
            info!(groups = plan.groups.len(), nodes = plan.nodes, "no changes");
        } else {
            info!(register = plan.registrations(), deregister = plan.deregistrations(), "plan:\n{plan}");
        }
        let engine = Engine::new(self.limiter, self.deadline, 16);
        let calls = apply::apply(self.elbv2, &engine, &plan, config.dry_run).await;
        let mut report = Report::new(triggers, &config.vpc_id, config.dry_run);
        report.plan = Some(plan);
        report.calls = calls;
        Ok(report.finish())
    }
}
