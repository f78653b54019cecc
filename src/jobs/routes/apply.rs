//! The routes job's writes: each table's planned actions through the shared
//! apply engine, made idempotent under races and redeliveries.

use tracing::{error, info, warn};

use super::Reconciler;
use super::plan::{RouteAction, RoutePlan, TablePlan};
use super::report::{Failure, NotStarted, TableReport};
use crate::aws::ec2::{AwsError, ROUTE_ALREADY_EXISTS, ROUTE_NOT_FOUND, ROUTE_TABLE_NOT_FOUND, RouteTables};
use crate::shared::apply::{Engine, ItemOutcome, stops_further_writes};

impl<E: RouteTables> Reconciler<'_, E> {
    /// Applies the plan. All tables at once, and within a table every
    /// action at once (they name different destinations), with at most
    /// `APPLY_CONCURRENCY` writes in flight and the limiter's pace. The one
    /// order kept: when a table's creates would pass its route quota before
    /// its deletes land, the deletes go first. A table's failure does not
    /// stop the others. Reports come back ordered by table id.
    pub async fn apply(&self, plan: RoutePlan) -> Vec<TableReport> {
        let engine = Engine::new(self.limiter, self.deadline, self.config.apply_concurrency);
        let mut reports: Vec<TableReport> =
            futures::future::join_all(plan.tables.into_iter().map(|table| self.apply_table(table, &engine))).await;
        reports.sort_by(|a, b| a.route_table_id.cmp(&b.route_table_id));
        reports
    }

    async fn apply_table(&self, table: TablePlan, engine: &Engine<'_>) -> TableReport {
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
        let id = table.route_table_id.as_str();
        let outcomes = engine
            .run_group(
                "table",
                vec![first, then],
                |action| {
                    let action = action.clone();
                    async move { self.apply_action(engine, id, &action).await }
                },
                stops_table,
            )
            .await;
        for outcome in outcomes {
            match outcome {
                ItemOutcome::Done(action) => report.record(&action),
                ItemOutcome::Failed(action, err) => report.failures.push(Failure::new(action, &err)),
                ItemOutcome::NotStarted(action, reason) => report.not_started.push(NotStarted { action, reason }),
            }
        }
        if let Some(first) = report.not_started.first() {
            warn!(route_table_id = %report.route_table_id, not_started = report.not_started.len(), reason = %first.reason,
                  "route changes not started; the next invocation continues");
        }
        report.sort();
        report
    }

    /// One planned action, made idempotent under races and redeliveries:
    /// a create that finds the route replaces it, a replace that finds none
    /// creates it, a delete that finds none is done. Logs what it changed
    /// or why it failed.
    async fn apply_action(&self, engine: &Engine<'_>, table: &str, action: &RouteAction) -> Result<(), AwsError> {
        let ec2 = self.ec2;
        let result = match action {
            RouteAction::Create { destination, target } => {
                match engine.paced(ec2.create_route(table, destination, target)).await {
                    Err(e) if e.is_code(ROUTE_ALREADY_EXISTS) => {
                        info!(route_table_id = table, %destination, "route appeared since the describe; replacing it");
                        engine.paced(ec2.replace_route(table, destination, target)).await
                    }
                    other => other,
                }
            }
            RouteAction::Replace { destination, to, .. } => {
                match engine.paced(ec2.replace_route(table, destination, to)).await {
                    Err(e) if e.is_missing_route() => {
                        info!(route_table_id = table, %destination, "route vanished since the describe; creating it");
                        engine.paced(ec2.create_route(table, destination, to)).await
                    }
                    other => other,
                }
            }
            RouteAction::Delete { destination, .. } => match engine.paced(ec2.delete_route(table, destination)).await {
                Err(e) if e.is_code(ROUTE_NOT_FOUND) => {
                    info!(route_table_id = table, %destination, "route already gone");
                    Ok(())
                }
                other => other,
            },
        };
        match &result {
            Ok(()) => log_action(table, action, false),
            Err(err) => error!(route_table_id = %table, action = action.verb(),
                               destination = %action.destination(), code = err.code().unwrap_or("-"),
                               error = %err, hint = super::report::hint(err), "route change failed"),
        }
        result
    }
}

/// Errors after which further writes to the same table are pointless or
/// impolite: the table is gone, or any error that stops writes everywhere.
fn stops_table(err: &AwsError) -> bool {
    err.is_code(ROUTE_TABLE_NOT_FOUND) || stops_further_writes(err)
}

/// Every mutation gets one structured log line: table, destination, old and new
/// target.
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
