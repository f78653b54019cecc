//! The targets job's writes: per group, its registrations in batches of
//! `RegisterTargets`, then its deregistrations in batches of
//! `DeregisterTargets`, through the shared apply engine. Idempotent:
//! registering a registered target changes nothing, and a batch that
//! ELBv2 refuses with `InvalidTarget` is retried one target at a time, so
//! that one bad target (an instance that stopped meanwhile, or one
//! already deregistered) neither blocks the others nor fails the group.

use tracing::{error, info, warn};

use super::plan::{Change, TargetsPlan};
use super::report::{CallResult, WriteStatus};
use crate::aws::elbv2::{Elbv2, INVALID_TARGET, TargetRef};
use crate::aws::error::AwsError;
use crate::shared::apply::{Engine, ItemOutcome, stops_further_writes};

/// One batch call.
#[derive(Clone, Debug)]
struct Batch {
    arn: String,
    action: &'static str,
    targets: Vec<Change>,
}

pub async fn apply<L: Elbv2>(elbv2: &L, engine: &Engine<'_>, plan: &TargetsPlan, dry_run: bool) -> Vec<CallResult> {
    let groups: Vec<Vec<Vec<Batch>>> = plan
        .groups
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let batches = |action, chunks: &mut dyn Iterator<Item = &[Change]>| -> Vec<Batch> {
                chunks.map(|c| Batch { arn: g.arn.clone(), action, targets: c.to_vec() }).collect()
            };
            vec![batches("register", &mut g.register_batches()), batches("deregister", &mut g.deregister_batches())]
        })
        .collect();
    let result =
        |b: Batch, status| CallResult { target_group_arn: b.arn, action: b.action, targets: b.targets, status };
    if dry_run {
        return groups.into_iter().flatten().flatten().map(|b| result(b, WriteStatus::Planned)).collect();
    }
    let run = |batch: &Batch| {
        let batch = batch.clone();
        async move { call(elbv2, engine, &batch).await }
    };
    let per_group = groups.into_iter().map(|waves| engine.run_group("target group", waves, run, stops_further_writes));
    futures::future::join_all(per_group)
        .await
        .into_iter()
        .flatten()
        .map(|outcome| match outcome {
            ItemOutcome::Done(b) => result(b, WriteStatus::Done),
            ItemOutcome::Failed(b, err) => result(b, WriteStatus::failed(&err)),
            ItemOutcome::NotStarted(b, reason) => result(b, WriteStatus::NotStarted { reason }),
        })
        .collect()
}

async fn call<L: Elbv2>(elbv2: &L, engine: &Engine<'_>, batch: &Batch) -> Result<(), AwsError> {
    let refs: Vec<TargetRef> =
        batch.targets.iter().map(|c| TargetRef { id: c.instance_id.clone(), port: c.port }).collect();
    let register = batch.action == "register";
    let send = |targets: Vec<TargetRef>| async move {
        let targets = targets;
        match register {
            true => engine.paced(elbv2.register_targets(&batch.arn, &targets)).await,
            false => engine.paced(elbv2.deregister_targets(&batch.arn, &targets)).await,
        }
    };
    let result = match send(refs.clone()).await {
        Err(e) if e.is_code(INVALID_TARGET) && refs.len() > 1 => {
            warn!(target_group_arn = %batch.arn, action = batch.action, "a target was refused; retrying one at a time");
            let mut first_error = None;
            for target in refs {
                match send(vec![target]).await {
                    Err(e) if e.is_code(INVALID_TARGET) && !register => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                    Ok(()) => {}
                }
            }
            first_error.map_or(Ok(()), Err)
        }
        // Deregistering a target that is already gone is what we wanted.
        Err(e) if e.is_code(INVALID_TARGET) && !register => Ok(()),
        other => other,
    };
    for change in &batch.targets {
        match &result {
            Ok(()) => info!(target_group_arn = %batch.arn, action = batch.action, instance_id = %change.instance_id,
                            port = ?change.port, reason = %change.reason, "target changed"),
            Err(err) => error!(target_group_arn = %batch.arn, action = batch.action, instance_id = %change.instance_id,
                               code = err.code().unwrap_or("-"), error = %err, hint = err.hint(), "target change failed"),
        }
    }
    result
}
