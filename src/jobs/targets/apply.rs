//! The targets job's writes, in two waves through the shared engine:
//! each group's registrations in batches of `RegisterTargets`, then its
//! deregistrations in batches of `DeregisterTargets`. Groups are
//! independent ([`Reach::Resource`]): none waits for another, and a
//! throttled or denied group stops only its own later calls.
//!
//! Idempotent: registering a registered target changes nothing, and a
//! batch that ELBv2 refuses with `InvalidTarget` is retried one target at
//! a time, so that one bad target (an instance that stopped meanwhile, or
//! one already deregistered) neither blocks the others nor withholds the
//! group's other calls.

use serde::Serialize;
use tracing::{info, warn};

use super::plan::{Change, TargetsPlan};
use crate::aws::elbv2::{Elbv2, INVALID_TARGET, TargetRef};
use crate::aws::error::AwsError;
use crate::shared::apply::{Engine, Phases, Reach, RowDetail, Step, stops_further_writes};
use crate::shared::report::WriteResult;

/// One batch call: its group, `register` or `deregister`, and its targets.
/// The report's row keeps it whole (`target_group_arn`, `action`,
/// `targets`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub target_group_arn: String,
    pub action: &'static str,
    pub targets: Vec<Change>,
}

impl RowDetail<Batch> for Batch {
    fn row_detail(&self) -> Batch {
        self.clone()
    }
}

/// The report's row of one batch.
pub type CallResult = WriteResult<Batch>;

/// The steps of one action: one per batch of each group with changes.
fn steps<'p>(
    plan: &'p TargetsPlan,
    action: &'static str,
    batches: impl Fn(&'p super::plan::GroupPlan) -> Vec<&'p [Change]>,
) -> Vec<Step<Batch>> {
    let mut steps = Vec::new();
    for group in &plan.groups {
        for targets in batches(group) {
            let batch = Batch { target_group_arn: group.arn.clone(), action, targets: targets.to_vec() };
            steps.push(Step::new(&group.arn, format!("{action} of {} target(s)", targets.len()), batch));
        }
    }
    steps
}

pub async fn apply<L: Elbv2>(elbv2: &L, engine: &Engine<'_>, plan: &TargetsPlan, dry_run: bool) -> Vec<CallResult> {
    let mut phases = Phases::new(engine, "targets", dry_run).with_reach(Reach::Resource);
    let run = |batch: &Batch| {
        let batch = batch.clone();
        async move { call(elbv2, engine, &batch).await }
    };
    let register = steps(plan, "register", |g| g.register_batches().collect());
    let deregister = steps(plan, "deregister", |g| g.deregister_batches().collect());
    phases.run_waves("target group", vec![register, deregister], run, stops_further_writes).await;
    phases.results()
}

async fn call<L: Elbv2>(elbv2: &L, engine: &Engine<'_>, batch: &Batch) -> Result<(), AwsError> {
    let arn = batch.target_group_arn.as_str();
    let refs: Vec<TargetRef> =
        batch.targets.iter().map(|c| TargetRef { id: c.instance_id.clone(), port: c.port }).collect();
    let register = batch.action == "register";
    let send = |targets: Vec<TargetRef>| async move {
        let targets = targets;
        match register {
            true => engine.paced(elbv2.register_targets(arn, &targets)).await,
            false => engine.paced(elbv2.deregister_targets(arn, &targets)).await,
        }
    };
    let logged = |change: &Change, result: &Result<(), AwsError>| match result {
        Ok(()) => info!(target_group_arn = %arn, action = batch.action, instance_id = %change.instance_id,
                        port = ?change.port, reason = %change.reason, "target changed"),
        Err(err) => warn!(target_group_arn = %arn, action = batch.action, instance_id = %change.instance_id,
                          port = ?change.port, code = err.code().unwrap_or("-"), "target not changed"),
    };
    // The batch's one line (made or failed) is the engine's; these name
    // each target it carried, with what became of that target.
    let result = match send(refs.clone()).await {
        Err(e) if e.is_code(INVALID_TARGET) && refs.len() > 1 => {
            warn!(target_group_arn = %arn, action = batch.action, "a target was refused; retrying one at a time");
            let mut first_error = None;
            for (change, target) in batch.targets.iter().zip(refs) {
                let result = match send(vec![target]).await {
                    // Deregistering a target that is already gone is what
                    // we wanted.
                    Err(e) if e.is_code(INVALID_TARGET) && !register => Ok(()),
                    other => other,
                };
                logged(change, &result);
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
            return first_error.map_or(Ok(()), Err);
        }
        Err(e) if e.is_code(INVALID_TARGET) && !register => Ok(()),
        other => other,
    };
    for change in &batch.targets {
        logged(change, &result);
    }
    result
}
