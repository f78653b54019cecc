//! One reconcile: observe -> plan -> apply -> report.
//!
//! Every invocation reconciles the whole state from what EC2 reports; the
//! event only says why it runs. A lost, duplicated or out-of-order event
//! therefore leaves the tables wrong for no longer than the next run.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::{Config, SourceSelector};
use crate::ec2::{Ec2, Ec2Error, FailureKind, ROUTE_TABLE_NOT_FOUND, describe_all};
use crate::event::{self, Trigger};
use crate::limiter::WriteLimiter;
use crate::model::{Filter, RouteTable};
use crate::plan::{self, Guards, RouteAction, RoutePlan, TablePlan};
use crate::report::{Failure, NotStarted, Report, RouteWait, TableReport};
use crate::{Error, Result};

/// Tag of the cluster's route table, legacy form (`KubernetesCluster=<name>`).
pub const LEGACY_CLUSTER_TAG: &str = "KubernetesCluster";
/// Tag key prefix of the cluster's route table (`kubernetes.io/cluster/<name>`).
pub const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";

/// No write is started with less than this left before the deadline: one
/// write with all its retries (the SDK's operation timeout is 2 s less)
/// must still fit, and the report must get out.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// What a reconcile needs besides EC2: the configuration, the write pace,
/// and the time by which it must be done.
pub struct Reconciler<'a, E> {
    pub ec2: &'a E,
    pub config: &'a Config,
    pub limiter: &'a WriteLimiter,
    pub deadline: Option<Instant>,
}

/// One table's progress while its actions run concurrently.
struct TableState<'a> {
    id: &'a str,
    /// Set by an error after which no further write to the table starts.
    stopped: Mutex<Option<String>>,
    report: Mutex<TableReport>,
}

impl TableState<'_> {
    fn report(&self) -> std::sync::MutexGuard<'_, TableReport> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The observed state: the source table and the target tables.
#[derive(Clone, Debug)]
pub struct Observed {
    pub source: RouteTable,
    pub targets: Vec<RouteTable>,
}

/// Handles one invocation event: decode, then reconcile unless the event
/// asks for nothing. An error means Lambda should retry.
pub async fn handle_event<E: Ec2>(reconciler: &Reconciler<'_, E>, event: &Value) -> Result<Report> {
    let triggers = event::decode(event)?;
    if !triggers.iter().any(Trigger::wants_reconcile) {
        info!(triggers = ?triggers, "test notification: nothing to do");
        return Ok(Report::new(triggers, &reconciler.config.vpc_id, reconciler.config.dry_run));
    }
    let new_node = triggers.iter().find_map(Trigger::new_node).map(str::to_owned);
    let (mut report, observed) = reconciler.reconcile_observed(triggers).await?;
    if let Some(instance) = new_node
        && report.is_complete()
        && !reconciler.config.route_wait.is_zero()
        && !observed.source.routes.iter().any(|r| r.reaches_instance(&instance))
    {
        let wait = reconciler.wait_for_route(&instance).await?;
        let found = wait.found;
        report.route_wait = Some(wait);
        if found {
            let (later, _) = reconciler.reconcile_observed(report.triggers.clone()).await?;
            let route_wait = report.route_wait.take();
            report = report.absorb(later);
            report.route_wait = route_wait;
        }
    }
    match report.is_complete() {
        true => Ok(report),
        false => Err(Error::Incomplete(Box::new(report))),
    }
}

impl<E: Ec2> Reconciler<'_, E> {
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

    /// Reads the source and the target tables: two `DescribeRouteTables`
    /// (each paginated), concurrently, both restricted to `VPC_ID`.
    ///
    /// The source is picked from the VPC's tables by its tags here rather
    /// than by a two-valued `tag-key` filter: such a filter is an OR on EC2
    /// but not on every EC2-compatible API, and a VPC holds few tables.
    pub async fn observe(&self) -> Result<Observed> {
        let config = self.config;
        let mut target_filters = vec![Filter::new("vpc-id", [config.vpc_id.as_str()])];
        target_filters.extend(config.target_filters.iter().cloned());

        let source_filters = self.source_filters();
        let (sources, targets) =
            futures::try_join!(describe_all(self.ec2, &source_filters), describe_all(self.ec2, &target_filters),)
                .map_err(Error::Describe)?;

        let source = self.pick_source(sources)?;
        // The filter already says so; checking again costs nothing and keeps
        // a table of another VPC out even if a filter were ignored.
        let targets = targets.into_iter().filter(|t| t.vpc_id == config.vpc_id && t.id != source.id).collect();
        Ok(Observed { source, targets })
    }

    /// Kubernetes writes a node's pod route only once the node registers,
    /// which is after its launch notification. Re-reads the source, with
    /// backoff (2 s doubling to 15 s), until the instance has a route,
    /// `ROUTE_WAIT_SECONDS` have passed, or the deadline draws near. The
    /// schedule, if enabled, is the backstop for a route that comes later.
    pub async fn wait_for_route(&self, instance_id: &str) -> Result<RouteWait> {
        const FIRST: Duration = Duration::from_secs(2);
        const MAX: Duration = Duration::from_secs(15);
        // Room kept after the wait for the second reconcile.
        const RECONCILE_ROOM: Duration = Duration::from_secs(10);
        let start = Instant::now();
        let budget_end = start + self.config.route_wait;
        let mut delay = FIRST;
        let mut checks = 0;
        info!(
            instance_id,
            wait_s = self.config.route_wait.as_secs(),
            "the new node has no route in the source yet; waiting for it"
        );
        loop {
            let mut wake = (Instant::now() + delay).min(budget_end);
            if let Some(deadline) = self.deadline {
                wake = wake.min(deadline.checked_sub(DEADLINE_MARGIN + RECONCILE_ROOM).unwrap_or(start));
            }
            if wake <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(wake).await;
            checks += 1;
            let source = self.observe_source().await?;
            if source.routes.iter().any(|r| r.reaches_instance(instance_id)) {
                let waited_ms = start.elapsed().as_millis() as u64;
                info!(instance_id, checks, waited_ms, "the new node's route appeared in the source");
                return Ok(RouteWait { instance_id: instance_id.to_owned(), checks, found: true, waited_ms });
            }
            delay = (delay * 2).min(MAX);
        }
        let waited_ms = start.elapsed().as_millis() as u64;
        warn!(
            instance_id,
            checks,
            waited_ms,
            "the new node's route did not appear in the source; a later event or the schedule will mirror it"
        );
        Ok(RouteWait { instance_id: instance_id.to_owned(), checks, found: false, waited_ms })
    }

    /// The source table alone: one describe (paginated).
    async fn observe_source(&self) -> Result<RouteTable> {
        let filters = self.source_filters();
        let tables = describe_all(self.ec2, &filters).await.map_err(Error::Describe)?;
        self.pick_source(tables)
    }

    fn source_filters(&self) -> Vec<Filter> {
        let mut filters = vec![Filter::new("vpc-id", [self.config.vpc_id.as_str()])];
        if let SourceSelector::RouteTableId(id) = &self.config.source {
            filters.push(Filter::new("route-table-id", [id.as_str()]));
        }
        filters
    }

    /// The one source among the tables read, or why there is not one.
    fn pick_source(&self, tables: Vec<RouteTable>) -> Result<RouteTable> {
        let config = self.config;
        let mut sources: Vec<RouteTable> =
            tables.into_iter().filter(|t| t.vpc_id == config.vpc_id && is_source(t, &config.source)).collect();
        match sources.len() {
            1 => Ok(sources.remove(0)),
            0 => Err(Error::SourceNotFound { selector: config.source.to_string(), vpc_id: config.vpc_id.clone() }),
            _ => Err(Error::AmbiguousSource {
                selector: config.source.to_string(),
                vpc_id: config.vpc_id.clone(),
                ids: sources.into_iter().map(|t| t.id).collect(),
            }),
        }
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

    /// Applies the plan. All tables at once, and within a table every
    /// action at once (they name different destinations), with at most
    /// `APPLY_CONCURRENCY` writes in flight and the limiter's pace. The one
    /// order kept: when a table's creates would pass its route quota before
    /// its deletes land, the deletes go first. A table's failure does not
    /// stop the others. Reports come back ordered by table id.
    pub async fn apply(&self, plan: RoutePlan) -> Vec<TableReport> {
        let permits = Semaphore::new(self.config.apply_concurrency);
        let mut reports: Vec<TableReport> =
            futures::future::join_all(plan.tables.into_iter().map(|table| self.apply_table(table, &permits))).await;
        reports.sort_by(|a, b| a.route_table_id.cmp(&b.route_table_id));
        reports
    }

    async fn apply_table(&self, table: TablePlan, permits: &Semaphore) -> TableReport {
        let mut report = TableReport::new(&table.route_table_id);
        report.name = table.name;
        report.withheld = table.withheld;
        report.skipped = table.skipped;
        for withheld in &report.withheld {
            warn!(route_table_id = %table.route_table_id, action = withheld.action.verb(),
                  destination = %withheld.action.destination(), reason = %withheld.reason, "route change withheld");
        }
        if self.config.dry_run {
            for action in &table.actions {
                log_action(&table.route_table_id, action, true);
                report.record(action);
            }
            return report;
        }
        let creates = table.actions.iter().filter(|a| matches!(a, RouteAction::Create { .. })).count();
        let deletes_first = table.route_count + creates > self.config.route_table_limit;
        let (first, then): (Vec<RouteAction>, Vec<RouteAction>) = if deletes_first {
            table.actions.into_iter().partition(|a| !matches!(a, RouteAction::Create { .. }))
        } else {
            (table.actions, Vec::new())
        };
        let table_state =
            TableState { id: &table.route_table_id, stopped: Mutex::new(None), report: Mutex::new(report) };
        for wave in [first, then] {
            futures::future::join_all(wave.into_iter().map(|action| self.run_action(&table_state, action, permits)))
                .await;
        }
        let mut report = table_state.report.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = report.not_started.first() {
            warn!(route_table_id = %report.route_table_id, not_started = report.not_started.len(), reason = %first.reason,
                  "route changes not started; the next invocation continues");
        }
        report.sort();
        report
    }

    async fn run_action(&self, table: &TableState<'_>, action: RouteAction, permits: &Semaphore) {
        let Ok(_permit) = permits.acquire().await else { return };
        let stopped = table.stopped.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let reason = match stopped {
            Some(reason) => Some(reason),
            None => self.stop_reason().await,
        };
        if let Some(reason) = reason {
            table.report().not_started.push(NotStarted { action, reason });
            return;
        }
        match self.apply_action(table.id, &action).await {
            Ok(()) => {
                log_action(table.id, &action, false);
                table.report().record(&action);
            }
            Err(err) => {
                error!(route_table_id = %table.id, action = action.verb(),
                       destination = %action.destination(), code = err.code().unwrap_or("-"),
                       error = %err, hint = err.hint(), "route change failed");
                if stops_table(&err) {
                    let reason =
                        format!("an earlier write to this table failed with {}", err.code().unwrap_or("an error"));
                    table.stopped.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(reason);
                }
                table.report().failures.push(Failure::new(action, &err));
            }
        }
    }

    /// Why no further write may start now, if one may not: too little time
    /// left before the deadline once the limiter's wait is paid.
    async fn stop_reason(&self) -> Option<String> {
        let deadline = self.deadline?;
        let wait = self.limiter.delay().await;
        let left = deadline.saturating_duration_since(Instant::now());
        (left < wait + DEADLINE_MARGIN).then(|| format!("{} ms left before the invocation deadline", left.as_millis()))
    }

    /// One planned action, made idempotent under races and redeliveries:
    /// a create that finds the route replaces it, a replace that finds none
    /// creates it, a delete that finds none is done.
    async fn apply_action(&self, table: &str, action: &RouteAction) -> std::result::Result<(), Ec2Error> {
        self.limiter.acquire().await;
        match action {
            RouteAction::Create { destination, target } => {
                match self.ec2.create_route(table, destination, target).await {
                    Err(e) if e.is_code(crate::ec2::ROUTE_ALREADY_EXISTS) => {
                        info!(route_table_id = table, %destination, "route appeared since the describe; replacing it");
                        self.limiter.acquire().await;
                        self.ec2.replace_route(table, destination, target).await
                    }
                    other => other,
                }
            }
            RouteAction::Replace { destination, to, .. } => {
                match self.ec2.replace_route(table, destination, to).await {
                    Err(e) if e.is_missing_route() => {
                        info!(route_table_id = table, %destination, "route vanished since the describe; creating it");
                        self.limiter.acquire().await;
                        self.ec2.create_route(table, destination, to).await
                    }
                    other => other,
                }
            }
            RouteAction::Delete { destination, .. } => match self.ec2.delete_route(table, destination).await {
                Err(e) if e.is_code(crate::ec2::ROUTE_NOT_FOUND) => {
                    info!(route_table_id = table, %destination, "route already gone");
                    Ok(())
                }
                other => other,
            },
        }
    }
}

/// Errors after which further writes to the same table are pointless or
/// impolite: the table is gone, we may not write it, or EC2 is throttling.
fn stops_table(err: &Ec2Error) -> bool {
    err.is_code(ROUTE_TABLE_NOT_FOUND)
        || err.is_throttling()
        || err.is_unauthorized()
        || matches!(err.kind, FailureKind::Other | FailureKind::Certificate)
}

fn is_source(table: &RouteTable, selector: &SourceSelector) -> bool {
    match selector {
        SourceSelector::RouteTableId(id) => &table.id == id,
        SourceSelector::ClusterTag(name) => {
            table.tags.get(LEGACY_CLUSTER_TAG) == Some(name)
                || table.tags.contains_key(&format!("{CLUSTER_TAG_PREFIX}{name}"))
        }
    }
}

/// Every mutation gets one structured log line: table, destination, old and new target.
fn log_action(table: &str, action: &RouteAction, dry_run: bool) {
    let (old, new) = match action {
        RouteAction::Create { target, .. } => ("-".to_owned(), target.to_string()),
        RouteAction::Replace { from, to, .. } => (from.to_string(), to.to_string()),
        RouteAction::Delete { target, .. } => (target.to_string(), "-".to_owned()),
    };
    let verb = action.verb();
    let destination = action.destination();
    if dry_run {
        info!(route_table_id = table, action = verb, %destination, old_target = %old, new_target = %new, dry_run, "route change planned (dry run)");
    } else {
        info!(route_table_id = table, action = verb, %destination, old_target = %old, new_target = %new, "route changed");
    }
}
