//! The egress job's writes, through the shared apply engine: first the
//! source/destination fixes (before the plan: only a fix that succeeded
//! lets a NAT carry a table), then per table its default route, then its
//! failback clock, the clock only once the route is written.

use ipnet::IpNet;
use tracing::{error, info};

use super::config::FAILBACK_CLOCK_TAG;
use super::model::NatTarget;
use super::plan::{EgressPlan, RouteChange, TagChange};
use super::report::{WriteResult, WriteStatus};
use crate::aws::ec2::model::{Destination, Target};
use crate::aws::ec2::{AwsError, Nats, ROUTE_ALREADY_EXISTS, RouteTables};
use crate::shared::apply::{Engine, ItemOutcome};

/// One write of the egress job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressWrite {
    SourceDestCheckOff { instance_id: String },
    Route { table_id: String, change: RouteChange },
    Clock { table_id: String, change: TagChange },
}

impl EgressWrite {
    fn resource(&self) -> &str {
        match self {
            EgressWrite::SourceDestCheckOff { instance_id } => instance_id,
            EgressWrite::Route { table_id, .. } | EgressWrite::Clock { table_id, .. } => table_id,
        }
    }

    fn describe(&self, destination: &IpNet) -> String {
        match self {
            EgressWrite::SourceDestCheckOff { .. } => "source/destination check off".into(),
            EgressWrite::Route { change: RouteChange::Create { nat }, .. } => format!("create {destination} -> {nat}"),
            EgressWrite::Route { change: RouteChange::Replace { from, to }, .. } => {
                format!("replace {destination} {from} -> {to}")
            }
            EgressWrite::Clock { change: TagChange::Set(at), .. } => format!("tag {FAILBACK_CLOCK_TAG}={at}"),
            EgressWrite::Clock { change: TagChange::Clear, .. } => format!("untag {FAILBACK_CLOCK_TAG}"),
        }
    }
}

fn target(nat: &NatTarget) -> Target {
    match nat {
        NatTarget::NetworkInterface(id) => Target::NetworkInterface(id.as_str().into()),
        NatTarget::Instance(id) => Target::Instance(id.as_str().into()),
        NatTarget::NatGateway(id) => Target::NatGateway(id.as_str().into()),
    }
}

/// Turns the source/destination check off on these NAT instances (or, in
/// a dry run, records it as planned). This runs before the plan that
/// routes tables: only an instance whose fix is made may carry one.
pub async fn fix_source_dest_checks<E: RouteTables + Nats>(
    ec2: &E,
    engine: &Engine<'_>,
    instance_ids: &[String],
    destination: IpNet,
    dry_run: bool,
) -> Vec<WriteResult> {
    let fixes: Vec<EgressWrite> =
        instance_ids.iter().map(|id| EgressWrite::SourceDestCheckOff { instance_id: id.clone() }).collect();
    run_groups(ec2, engine, vec![vec![fixes]], destination, dry_run, |_| false).await
}

/// Applies the plan's route and failback-clock writes (or, in a dry run,
/// records them as planned). Its source/destination fixes are made before
/// it was planned, by [`fix_source_dest_checks`].
pub async fn apply<E: RouteTables + Nats>(
    ec2: &E,
    engine: &Engine<'_>,
    plan: &EgressPlan,
    destination: IpNet,
    dry_run: bool,
) -> Vec<WriteResult> {
    let tables: Vec<Vec<Vec<EgressWrite>>> = plan
        .tables
        .iter()
        .map(|t| {
            let route =
                t.route_change.clone().map(|change| EgressWrite::Route { table_id: t.table_id.clone(), change });
            let clock = t.tag_change.map(|change| EgressWrite::Clock { table_id: t.table_id.clone(), change });
            vec![route.into_iter().collect(), clock.into_iter().collect()]
        })
        .filter(|waves: &Vec<Vec<EgressWrite>>| waves.iter().any(|w| !w.is_empty()))
        .collect();
    // A table's clock is written only after its route: any failure stops the table.
    run_groups(ec2, engine, tables, destination, dry_run, |_| true).await
}

/// Each group's waves through the engine, groups concurrently; results by
/// resource, then change.
async fn run_groups<E: RouteTables + Nats>(
    ec2: &E,
    engine: &Engine<'_>,
    groups: Vec<Vec<Vec<EgressWrite>>>,
    destination: IpNet,
    dry_run: bool,
    stops: fn(&AwsError) -> bool,
) -> Vec<WriteResult> {
    let result = |write: &EgressWrite, status| WriteResult {
        resource: write.resource().to_owned(),
        change: write.describe(&destination),
        status,
    };
    if dry_run {
        return groups.iter().flatten().flatten().map(|w| result(w, WriteStatus::Planned)).collect();
    }
    let run = |write: &EgressWrite| {
        let write = write.clone();
        async move { write_one(ec2, engine, &write, destination).await }
    };
    let per_group = groups.into_iter().map(|waves| engine.run_group("table", waves, run, stops));
    let outcomes = futures::future::join_all(per_group).await.into_iter().flatten();
    let mut results: Vec<WriteResult> = outcomes
        .map(|outcome| match outcome {
            ItemOutcome::Done(w) => result(&w, WriteStatus::Done),
            ItemOutcome::Failed(w, err) => result(&w, WriteStatus::failed(&err)),
            ItemOutcome::NotStarted(w, reason) => result(&w, WriteStatus::NotStarted { reason }),
        })
        .collect();
    results.sort_by(|a, b| (&a.resource, &a.change).cmp(&(&b.resource, &b.change)));
    results
}

/// One write, idempotent under races: a create that finds the route
/// replaces it, a replace that finds none creates it.
async fn write_one<E: RouteTables + Nats>(
    ec2: &E,
    engine: &Engine<'_>,
    write: &EgressWrite,
    destination: IpNet,
) -> Result<(), AwsError> {
    let dest = Destination::Cidr(destination);
    let result = match write {
        EgressWrite::SourceDestCheckOff { instance_id } => {
            engine.paced(ec2.set_source_dest_check(instance_id, false)).await
        }
        EgressWrite::Route { table_id, change: RouteChange::Create { nat } } => {
            match engine.paced(ec2.create_route(table_id, &dest, &target(nat))).await {
                Err(e) if e.is_code(ROUTE_ALREADY_EXISTS) => {
                    engine.paced(ec2.replace_route(table_id, &dest, &target(nat))).await
                }
                other => other,
            }
        }
        EgressWrite::Route { table_id, change: RouteChange::Replace { to, .. } } => {
            match engine.paced(ec2.replace_route(table_id, &dest, &target(to))).await {
                Err(e) if e.is_missing_route() => engine.paced(ec2.create_route(table_id, &dest, &target(to))).await,
                other => other,
            }
        }
        EgressWrite::Clock { table_id, change: TagChange::Set(at) } => {
            engine.paced(ec2.create_tag(table_id, FAILBACK_CLOCK_TAG, &at.to_string())).await
        }
        EgressWrite::Clock { table_id, change: TagChange::Clear } => {
            engine.paced(ec2.delete_tag(table_id, FAILBACK_CLOCK_TAG)).await
        }
    };
    let (resource, change) = (write.resource(), write.describe(&destination));
    match &result {
        Ok(()) => info!(resource, change, "egress change made"),
        Err(err) => error!(resource, change, code = err.code().unwrap_or("-"), error = %err, hint = err.hint(),
                           "egress change failed"),
    }
    result
}
