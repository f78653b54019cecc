//! The egress job's writes, as phases of the shared engine: first the
//! source/destination fixes (before the plan: only a fix that succeeded
//! lets a NAT carry a table), then the default routes, then the failback
//! clocks, a table's clock only once its route is written.

use ipnet::IpNet;

use super::config::FAILBACK_CLOCK_TAG;
use super::model::NatTarget;
use super::plan::{EgressPlan, RouteChange, TagChange};
use crate::aws::ec2::model::{Destination, Target};
use crate::aws::ec2::{AwsError, Nats, ROUTE_ALREADY_EXISTS, RouteTables};
use crate::shared::apply::{Engine, Phases, Step};

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

/// Whether a write's `change` (as [`EgressWrite`] describes it) is a
/// failback clock: bookkeeping of this job, not a change of the network.
pub fn is_clock(change: &str) -> bool {
    change.starts_with("tag ") || change.starts_with("untag ")
}

fn target(nat: &NatTarget) -> Target {
    match nat {
        NatTarget::NetworkInterface(id) => Target::NetworkInterface(id.as_str().into()),
        NatTarget::Instance(id) => Target::Instance(id.as_str().into()),
        NatTarget::NatGateway(id) => Target::NatGateway(id.as_str().into()),
    }
}

fn step(write: EgressWrite, destination: &IpNet) -> Step<EgressWrite> {
    let (resource, change) = (write.resource().to_owned(), write.describe(destination));
    let (from, to) = match &write {
        EgressWrite::Route { change: RouteChange::Create { nat }, .. } => (None, Some(nat.to_string())),
        EgressWrite::Route { change: RouteChange::Replace { from, to }, .. } => {
            (Some(from.to_string()), Some(to.to_string()))
        }
        _ => (None, None),
    };
    Step::new(resource, change, write).from_to(from, to)
}

/// Turns the source/destination check off on these NAT instances (planned
/// only, in a dry run). This runs before the plan that routes tables: only
/// an instance whose fix is made may carry one. Returns the instances whose
/// fix was made (or, in a dry run, planned).
pub async fn fix_source_dest_checks<E: RouteTables + Nats>(
    ec2: &E,
    phases: &mut Phases<'_, '_>,
    instance_ids: &[String],
    destination: IpNet,
) -> Vec<String> {
    let engine = phases.engine();
    let steps = instance_ids
        .iter()
        .map(|id| step(EgressWrite::SourceDestCheckOff { instance_id: id.clone() }, &destination))
        .collect();
    let run = |write: &EgressWrite| write_one(ec2, engine, write.clone(), destination);
    let fixed = phases.run("instance", steps, run, |_| false).await;
    fixed.done.into_iter().map(|(step, ())| step.resource).collect()
}

/// Applies the plan's route and failback-clock writes (planned only, in a
/// dry run): the routes at once, then the clocks of the tables whose route
/// went through (a failed route stops its table).
pub async fn apply<E: RouteTables + Nats>(ec2: &E, phases: &mut Phases<'_, '_>, plan: &EgressPlan, destination: IpNet) {
    let engine = phases.engine();
    let run = |write: &EgressWrite| write_one(ec2, engine, write.clone(), destination);
    let routes = plan
        .tables
        .iter()
        .filter_map(|t| {
            let change = t.route_change.clone()?;
            Some(step(EgressWrite::Route { table_id: t.table_id.clone(), change }, &destination))
        })
        .collect();
    phases.run("table", routes, run, |_| false).await;
    let clocks = plan
        .tables
        .iter()
        .filter_map(|t| {
            Some(step(EgressWrite::Clock { table_id: t.table_id.clone(), change: t.tag_change? }, &destination))
        })
        .collect();
    phases.run("table", clocks, run, |_| false).await;
}

/// One write, idempotent under races: a create that finds the route
/// replaces it, a replace that finds none creates it.
async fn write_one<E: RouteTables + Nats>(
    ec2: &E,
    engine: &Engine<'_>,
    write: EgressWrite,
    destination: IpNet,
) -> Result<(), AwsError> {
    let dest = Destination::Cidr(destination);
    match &write {
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
    }
}
