//! The routes job's writes: every table's planned actions through the
//! shared phases, made idempotent under races and redeliveries.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::Reconciler;
use super::plan::{RouteAction, RoutePlan};
use super::report::{Failure, NotStarted, TableReport};
use crate::aws::ec2::{AwsError, ROUTE_ALREADY_EXISTS, ROUTE_NOT_FOUND, ROUTE_TABLE_NOT_FOUND, RouteTables};
use crate::shared::apply::{Engine, Phases, Reach, RowDetail, Step, stops_further_writes};
use crate::shared::report::WriteStatus;

/// One route write: the table and the action.
#[derive(Clone, Debug)]
pub struct RouteWrite {
    table: String,
    action: RouteAction,
}

impl RowDetail<RouteAction> for RouteWrite {
    fn row_detail(&self) -> RouteAction {
        self.action.clone()
    }
}

fn step(table: &str, action: RouteAction) -> Step<RouteWrite> {
    let (from, to) = match &action {
        RouteAction::Create { target, .. } => (None, Some(target.to_string())),
        RouteAction::Replace { from, to, .. } => (Some(from.to_string()), Some(to.to_string())),
        RouteAction::Delete { target, .. } => (Some(target.to_string()), None),
    };
    let write = RouteWrite { table: table.to_owned(), action };
    Step::new(table, write.action.to_string(), write).from_to(from, to)
}

impl<E: RouteTables> Reconciler<'_, E> {
    /// Applies the plan. All tables at once, and within a table every
    /// action at once (they name different destinations), with at most
    /// `APPLY_CONCURRENCY` writes in flight and the limiter's pace. The one
    /// order kept: when a table's creates would pass its route quota before
    /// its deletes land, its creates wait for them (a second wave of that
    /// table). Tables are independent ([`Reach::Resource`]): one table's
    /// failure stops no other, and none waits for another. Reports come
    /// back ordered by table id.
    pub async fn apply(&self, plan: RoutePlan) -> Vec<TableReport> {
        let engine = Engine::new(self.limiter, self.deadline, self.config.apply_concurrency);
        let mut phases = Phases::new(&engine, "routes", self.config.dry_run)
            .with_reach(Reach::Resource)
            .with_hint(super::report::hint);
        let mut reports: BTreeMap<String, TableReport> = BTreeMap::new();
        let (mut first, mut then) = (Vec::new(), Vec::new());
        for table in plan.tables {
            let id = table.route_table_id;
            for withheld in &table.withheld {
                warn!(route_table_id = %id, action = withheld.action.verb(), destination = %withheld.action.destination(),
                      reason = %withheld.reason, "route change withheld");
            }
            let creates = table.actions.iter().filter(|a| matches!(a, RouteAction::Create { .. })).count();
            let deletes_first = table.route_count + creates > self.config.route_table_limit;
            for action in table.actions {
                let later = deletes_first && matches!(action, RouteAction::Create { .. });
                if later { &mut then } else { &mut first }.push(step(&id, action));
            }
            let mut report = TableReport::new(&id);
            (report.name, report.withheld, report.skipped) = (table.name, table.withheld, table.skipped);
            reports.insert(id, report);
        }
        let run = |write: &RouteWrite| {
            let (write, engine) = (write.clone(), &engine);
            async move { self.apply_action(engine, &write.table, &write.action).await }
        };
        phases.run_waves("table", vec![first, then], run, stops_table).await;
        for row in phases.results() {
            let Some(report) = reports.get_mut(&row.resource) else { continue };
            let action = row.detail;
            match row.status {
                WriteStatus::Done | WriteStatus::Planned => report.record(&action),
                WriteStatus::Failed { operation, kind, code, message, hint } => {
                    report.failures.push(Failure { action, operation, kind, code, message, hint })
                }
                WriteStatus::NotStarted { reason } => report.not_started.push(NotStarted { action, reason }),
            }
        }
        let mut reports: Vec<TableReport> = reports.into_values().collect();
        reports.iter_mut().for_each(TableReport::sort);
        reports
    }

    /// One planned action, made idempotent under races and redeliveries:
    /// a create that finds the route replaces it, a replace that finds none
    /// creates it, a delete that finds none is done. The change's one log
    /// line, made or failed, is the phases'.
    async fn apply_action(&self, engine: &Engine<'_>, table: &str, action: &RouteAction) -> Result<(), AwsError> {
        let ec2 = self.ec2;
        match action {
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
        }
    }
}

/// Errors after which further writes to the same table are pointless or
/// impolite: the table is gone, or any error that stops writes everywhere.
fn stops_table(err: &AwsError) -> bool {
    err.is_code(ROUTE_TABLE_NOT_FOUND) || stops_further_writes(err)
}
