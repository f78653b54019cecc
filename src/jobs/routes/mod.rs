//! The `routes` job: mirrors the cluster's kubenet pod routes from its
//! route table into every private route table of the VPC.
//!
//! One reconcile: observe -> plan -> apply -> report. Every invocation
//! reconciles the whole state from what EC2 reports; the event only says
//! why it runs. A lost, duplicated or out-of-order event therefore leaves
//! the tables wrong for no longer than the next run.
//!
//! Rooms: [`config`] (its variables), [`model`] (the managed CIDRs),
//! [`observe`] (source and targets), [`plan`] (pure), [`apply`] (writes
//! through the shared engine), [`report`] and [`render`] (for people).

pub mod apply;
pub mod config;
pub mod model;
pub mod observe;
pub mod plan;
pub mod render;
pub mod report;

use crate::aws::sdk::Service;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::aws::ec2::model::RouteTable;
use crate::aws::ec2::{Instances, RouteTables};
use crate::shared::event::Trigger;
use crate::shared::limiter::WriteLimiter;
use config::Config;
use plan::{Guards, RoutePlan};
use report::Report;

/// Why a routes invocation failed: the shared failures and routes' own
/// problems (the source table).
pub type Error = crate::shared::error::Failure<Problem>;

/// What stops the routes job before it writes: no source table, or two.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(
        "no source route table, nothing changed: no table in {vpc_id} is {selector}; check KUBE_CLUSTER_NAME or SOURCE_ROUTE_TABLE_ID and the table's tags"
    )]
    SourceNotFound { selector: String, vpc_id: String },

    #[error(
        "ambiguous source route table, nothing changed: {} tables in {vpc_id} are {selector} ({}); set SOURCE_ROUTE_TABLE_ID to the cluster's table",
        .ids.len(), .ids.join(", ")
    )]
    AmbiguousSource { selector: String, vpc_id: String, ids: Vec<String> },
}

impl crate::shared::error::Problem for Problem {
    type Report = Report;
    const READS: &'static str = "the route tables";

    fn kind(&self) -> &'static str {
        match self {
            Problem::SourceNotFound { .. } => "SourceNotFound",
            Problem::AmbiguousSource { .. } => "AmbiguousSource",
        }
    }

    /// The tables' tags or the configuration must change first.
    fn retryable(&self) -> bool {
        false
    }

    fn incomplete(report: &Report) -> String {
        incomplete_message(report)
    }
}

fn incomplete_message(report: &Report) -> String {
    let t = &report.totals;
    let tables: Vec<&str> =
        report.tables.iter().filter(|t| !t.is_complete()).map(|t| t.route_table_id.as_str()).collect();
    let codes: std::collections::BTreeSet<&str> = report
        .tables
        .iter()
        .flat_map(|t| t.failures.iter().map(|f| f.code.as_deref().unwrap_or(f.operation)))
        .collect();
    let codes: Vec<&str> = codes.into_iter().collect();
    let interrupted = report.errors.iter().map(|e| format!("; {e}")).collect::<String>();
    format!(
        "sync incomplete in {} of {} tables ({}): {} failed{}, {} not started, {} withheld by guards; {} created, {} replaced, {} deleted{interrupted}; Lambda retries the invocation",
        t.tables_failed,
        t.tables,
        tables.join(", "),
        t.failed,
        if codes.is_empty() { String::new() } else { format!(" ({})", codes.join(", ")) },
        t.not_started,
        t.withheld,
        t.created,
        t.replaced,
        t.deleted,
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a reconcile needs besides EC2: the configuration, the write pace,
/// and the time by which it must be done.
pub struct Reconciler<'a, E> {
    pub ec2: &'a E,
    pub config: &'a Config,
    pub limiter: &'a WriteLimiter,
    pub deadline: Option<Instant>,
}

/// The observed state: the source table and the target tables.
#[derive(Clone, Debug)]
pub struct Observed {
    pub source: RouteTable,
    pub targets: Vec<RouteTable>,
}

/// One invocation (through [`crate::shared::job::handle_event`]). An error
/// means Lambda should retry.
impl<E: RouteTables + Instances> crate::shared::job::Reconcile for Reconciler<'_, E> {
    type Report = Report;
    type Error = Error;

    fn nothing_to_do(&self, triggers: Vec<Trigger>) -> Report {
        Report::new(triggers, &self.config.vpc_id, self.config.dry_run)
    }

    async fn invoke(&self, triggers: Vec<Trigger>, _now: u64) -> Result<Report> {
        self.run(triggers).await
    }
}

/// The routes job on the AWS SDK's EC2 client.
pub struct Routes;

impl crate::shared::job::Job for Routes {
    const NAME: &'static str = "routes";
    type Config = Config;
    type Clients = crate::aws::ec2::AwsEc2;
    type Report = Report;
    type Problem = Problem;

    fn starting(config: &Config) {
        info!(job = "routes", vpc_id = %config.vpc_id, source = %config.source, managed_cidrs = %config.managed,
              dry_run = config.dry_run, "kube-rtsync starting");
    }

    fn for_a_person(config: &mut Config) {
        // Nobody waits at a terminal for a route that may never come.
        config.route_wait = std::time::Duration::ZERO;
    }

    fn clients(sdk: &aws_config::SdkConfig, throttles: &crate::shared::job::Throttles) -> Self::Clients {
        crate::aws::ec2::AwsEc2::new(crate::aws::sdk::ec2_client(sdk, throttles.ec2.clone()))
    }

    fn connections(_config: &Config) -> Vec<(Service, usize)> {
        // The source table and the private tables, read at once.
        vec![(Service::Ec2, 2)]
    }

    type Reconciler<'a> = Reconciler<'a, crate::aws::ec2::AwsEc2>;

    fn reconciler(run: crate::shared::job::Run<'_, Self>) -> Self::Reconciler<'_> {
        Reconciler { ec2: run.clients, config: run.config, limiter: run.limiter, deadline: run.deadline }
    }

    fn emf(config: &Config, report: &Report, run: &crate::shared::metrics::Invocation) -> Value {
        report::emf_record(&config.metrics_namespace, report::Dimension::of(config), report, run)
    }
}

impl<E: RouteTables + Instances> Reconciler<'_, E> {
    /// One reconcile for these triggers, with the wait for a new node's
    /// route and the pass after it; the report bounded for Lambda, and an
    /// error when it is incomplete, so that Lambda retries.
    pub async fn run(&self, triggers: Vec<Trigger>) -> Result<Report> {
        let reconciler = self;
        let new_node = triggers.iter().find_map(Trigger::new_node).map(str::to_owned);
        let (mut report, observed) = reconciler.reconcile_observed(triggers).await?;
        if let Some(instance) = new_node
            && report.is_complete()
            && !reconciler.config.route_wait.is_zero()
            && !observed.source.routes.iter().any(|r| r.reaches_instance(&instance))
        {
            // The first pass has written: whatever goes wrong from here, the
            // report of those writes must come back with the error. Only a node
            // of this cluster is waited for: any other instance's event (the
            // state-change rule sees the whole region) costs one reconcile.
            let wait = match reconciler.is_cluster_node(&instance).await {
                Ok(true) => reconciler.wait_for_route(&instance).await.map(Some),
                Ok(false) => {
                    info!(instance_id = %instance, "not an instance of this cluster in VPC_ID: no wait for a route");
                    Ok(None)
                }
                Err(err) => Err(err),
            };
            match wait {
                Ok(None) => {}
                Ok(Some(wait)) => {
                    let found = wait.found;
                    report.route_wait = Some(wait);
                    if found {
                        match reconciler.reconcile_observed(report.triggers.clone()).await {
                            Ok((later, _)) => {
                                let route_wait = report.route_wait.take();
                                report = report.absorb(later);
                                report.route_wait = route_wait;
                            }
                            Err(err) => {
                                report = report.interrupted("the pass after the new node's route appeared", &err)
                            }
                        }
                    }
                }
                Err(err) => report = report.interrupted("the wait for the new node's route", &err),
            }
        }
        // What goes back to Lambda (and into the log's report line) is bounded;
        // each change has its own log line.
        Error::unless_incomplete(report.bounded(report::LISTED_ENTRIES))
    }
}

impl<E: RouteTables> Reconciler<'_, E> {
    /// Observes, plans and applies; returns the report. Failures of single
    /// writes are in the report (`Outcome::Incomplete`); failures that stop
    /// the reconcile before any write are errors.
    pub async fn reconcile(&self, triggers: Vec<Trigger>) -> Result<Report> {
        self.reconcile_observed(triggers).await.map(|(report, _)| report)
    }

    /// [`Self::reconcile`], also returning what it observed.
    pub async fn reconcile_observed(&self, triggers: Vec<Trigger>) -> Result<(Report, Observed)> {
        let span = info_span!("reconcile", vpc_id = %self.config.vpc_id, dry_run = self.config.dry_run);
        async move {
            let observed = self.observe().await?;
            let (plan, desired) = self.plan(&observed);
            let mut report = Report {
                source_route_table_id: Some(observed.source.id.clone()),
                managed_routes: desired.managed_count(),
                skipped: desired.skipped.clone(),
                ..Report::new(triggers, &self.config.vpc_id, self.config.dry_run)
            };
            if observed.targets.is_empty() {
                let msg = format!("no route table in {} matches PRIVATE_RT_FILTERS", self.config.vpc_id);
                warn!(filters = ?self.config.target_filters, "{msg}");
                report.warnings.push(msg);
            }
            for skipped in &desired.skipped {
                warn!(route_table_id = %skipped.route_table_id, destination = %skipped.destination,
                      target = %skipped.target, reason = %skipped.reason, "source route not mirrored");
            }
            if plan.is_empty() && plan.withheld_count() == 0 {
                info!(tables = plan.tables.len(), managed_routes = report.managed_routes, "no changes");
            } else {
                info!(actions = plan.action_count(), withheld = plan.withheld_count(), "plan:\n{plan}");
            }
            report.tables = self.apply(plan).await;
            Ok((report.finish(), observed))
        }
        .instrument(span)
        .await
    }

    /// The guarded plan for the observed state.
    pub fn plan(&self, observed: &Observed) -> (RoutePlan, plan::DesiredRoutes) {
        let desired = plan::desired_routes(&observed.source, &self.config.managed);
        let plan = plan::plan(&desired, &observed.targets, &self.config.managed).guard(
            &desired,
            Guards {
                allow_empty_source: self.config.allow_empty_source,
                route_table_limit: self.config.route_table_limit,
            },
        );
        (plan, desired)
    }
}
