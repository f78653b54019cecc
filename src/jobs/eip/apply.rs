//! The eip job's writes, in the order that keeps every state safe:
//!
//! 1. releases disassociate first, so that an address is never named for
//!    a node that no longer holds it longer than one step;
//! 2. binds claim the address in the table (a conditional write: absent,
//!    not allocated, or already this node's) before anything else, so two
//!    invocations can never hand one address to two nodes;
//! 3. then associate it with `AllowReassociation=false`, which EC2 refuses
//!    for an address someone else associated meanwhile;
//! 4. then every record change of the reconcile in one Route 53 batch (a
//!    name only ever points at an address its node holds);
//! 5. then the items: the final binding with its association, or the
//!    released item (`Allocated: false`).
//!
//! A crash or failure after any step leaves a state the next plan repairs:
//! a claim without an association is resumed, an association without a
//! record or item is repaired, a disassociated address with a record or an
//! allocated item is released again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tracing::{error, info};

use super::config::Config;
use super::plan::EipPlan;
use super::report::{WriteResult, WriteStatus};
use crate::aws::dynamodb::{Binding, BindingStore};
use crate::aws::ec2::{ASSOCIATION_NOT_FOUND, AwsError, Ec2Addresses};
use crate::aws::route53::{RecordChange, Route53};
use crate::shared::apply::{Engine, ItemOutcome, stops_further_writes};

/// The services the eip job writes.
pub struct Clients<'a, E, R, B> {
    pub ec2: &'a E,
    pub route53: &'a R,
    pub bindings: &'a B,
}

#[derive(Clone, Debug)]
enum Step {
    Disassociate { ip: String, association_id: String },
    Claim { ip: String, item: Binding },
    Associate { ip: String, allocation_id: String, instance_id: String, network_interface_id: Option<String> },
    Records(Vec<RecordChange>),
    Item { ip: String, item: Binding, owner: Option<String> },
}

impl Step {
    fn resource(&self) -> String {
        match self {
            Step::Disassociate { ip, .. }
            | Step::Claim { ip, .. }
            | Step::Associate { ip, .. }
            | Step::Item { ip, .. } => ip.clone(),
            Step::Records(_) => "records".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Step::Disassociate { association_id, .. } => format!("disassociate {association_id}"),
            Step::Claim { item, .. } => format!("claim for {}", item.instance_id.as_deref().unwrap_or("-")),
            Step::Associate { instance_id, .. } => format!("associate with {instance_id}"),
            Step::Records(changes) => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| match c {
                        RecordChange::Upsert(r) => format!("UPSERT {} A {}", r.name, r.values.join(",")),
                        RecordChange::Delete(r) => format!("DELETE {} A {}", r.name, r.values.join(",")),
                    })
                    .collect();
                parts.join("; ")
            }
            Step::Item { item, .. } if item.allocated => {
                format!("item allocated to {}", item.instance_id.as_deref().unwrap_or("-"))
            }
            Step::Item { .. } => "item released".into(),
        }
    }
}

pub async fn apply<E: Ec2Addresses, R: Route53, B: BindingStore>(
    clients: &Clients<'_, E, R, B>,
    engine: &Engine<'_>,
    plan: &EipPlan,
    config: &Config,
    now: u64,
) -> Vec<WriteResult> {
    let table = config.table.as_deref();
    let zone = config.dns.as_ref().map(|d| d.zone_id.as_str());
    let associations: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut results = Vec::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();

    let run = |step: &Step| {
        let step = step.clone();
        let associations = &associations;
        async move {
            let result = match &step {
                Step::Disassociate { association_id, .. } => {
                    match engine.paced(clients.ec2.disassociate_address(association_id)).await {
                        Err(e) if e.is_code(ASSOCIATION_NOT_FOUND) => Ok(()),
                        other => other,
                    }
                }
                Step::Claim { item, .. } => {
                    engine
                        .paced(clients.bindings.put(table.unwrap_or_default(), item, item.instance_id.as_deref()))
                        .await
                }
                Step::Associate { ip, allocation_id, instance_id, network_interface_id } => {
                    let associate =
                        clients.ec2.associate_address(allocation_id, instance_id, network_interface_id.as_deref());
                    let id = engine.paced(associate).await?;
                    associations.lock().unwrap_or_else(|p| p.into_inner()).insert(ip.clone(), id);
                    Ok(())
                }
                Step::Records(changes) => engine.paced(clients.route53.change(zone.unwrap_or_default(), changes)).await,
                Step::Item { item, owner, .. } => {
                    engine.paced(clients.bindings.put(table.unwrap_or_default(), item, owner.as_deref())).await
                }
            };
            log(&step, &result);
            result
        }
    };
    let mut phase = |steps: Vec<Step>, outcomes: Vec<ItemOutcome<Step>>, failed: &mut BTreeSet<String>| {
        let _ = steps;
        for outcome in outcomes {
            let (step, status) = match outcome {
                ItemOutcome::Done(s) => (s, WriteStatus::Done),
                ItemOutcome::Failed(s, e) => (s, WriteStatus::failed(&e)),
                ItemOutcome::NotStarted(s, reason) => (s, WriteStatus::NotStarted { reason }),
            };
            if !matches!(status, WriteStatus::Done) {
                failed.insert(step.resource());
            }
            results.push(WriteResult { resource: step.resource(), change: step.describe(), status });
        }
    };

    if config.dry_run {
        for b in &plan.binds {
            results.push(WriteResult {
                resource: b.public_ip.clone(),
                change: format!("bind to {}", b.instance_id),
                status: WriteStatus::Planned,
            });
        }
        for r in &plan.releases {
            results.push(WriteResult {
                resource: r.public_ip.clone(),
                change: format!("release ({})", r.reason),
                status: WriteStatus::Planned,
            });
        }
        for r in &plan.repairs {
            results.push(WriteResult {
                resource: r.public_ip.clone(),
                change: "repair".into(),
                status: WriteStatus::Planned,
            });
        }
        return results;
    }

    // 1. Releases disassociate.
    let steps: Vec<Step> = plan
        .releases
        .iter()
        .filter_map(|r| {
            let association_id = r.association_id.clone()?;
            Some(Step::Disassociate { ip: r.public_ip.clone(), association_id })
        })
        .collect();
    let outcomes = engine.run_group("address", vec![steps.clone()], run, |_| false).await;
    phase(steps, outcomes, &mut failed);

    // 2. Binds claim (with a table), 3. then associate.
    if table.is_some() {
        let steps: Vec<Step> = plan
            .binds
            .iter()
            .filter(|b| !b.resumed)
            .map(|b| Step::Claim { ip: b.public_ip.clone(), item: b.claim(now) })
            .collect();
        let outcomes = engine.run_group("address", vec![steps.clone()], run, stops_further_writes).await;
        phase(steps, outcomes, &mut failed);
    }
    let steps: Vec<Step> = plan
        .binds
        .iter()
        .filter(|b| !failed.contains(&b.public_ip))
        .map(|b| Step::Associate {
            ip: b.public_ip.clone(),
            allocation_id: b.allocation_id.clone(),
            instance_id: b.instance_id.clone(),
            network_interface_id: b.network_interface_id.clone(),
        })
        .collect();
    let outcomes = engine.run_group("address", vec![steps.clone()], run, stops_further_writes).await;
    phase(steps, outcomes, &mut failed);

    // 4. One batch of record changes, for the addresses whose EC2 step held.
    if let Some(dns) = &config.dns {
        let dns = super::model::Dns { suffix: dns.suffix.clone(), ttl: dns.ttl };
        let mut changes: Vec<(String, RecordChange)> = Vec::new();
        changes.extend(
            plan.releases
                .iter()
                .filter(|r| !failed.contains(&r.public_ip))
                .filter_map(|r| r.record_delete.clone().map(|rec| (r.public_ip.clone(), RecordChange::Delete(rec)))),
        );
        changes.extend(
            plan.binds
                .iter()
                .filter(|b| !failed.contains(&b.public_ip))
                .map(|b| (b.public_ip.clone(), RecordChange::Upsert(b.record(&dns)))),
        );
        changes.extend(plan.repairs.iter().filter_map(|r| r.record.clone().map(|c| (r.public_ip.clone(), c))));
        if !changes.is_empty() {
            let batch = Step::Records(changes.iter().map(|(_, c)| c.clone()).collect());
            let outcomes = engine.run_group("zone", vec![vec![batch.clone()]], run, |_| false).await;
            let batch_failed = outcomes.iter().any(|o| !matches!(o, ItemOutcome::Done(_)));
            if batch_failed && changes.len() > 1 {
                // One bad change fails the whole batch: find it, and let the others through.
                let singles: Vec<Step> = changes.iter().map(|(_, c)| Step::Records(vec![c.clone()])).collect();
                let outcomes = engine.run_group("zone", vec![singles], run, |_| false).await;
                for (outcome, (ip, _)) in outcomes.into_iter().zip(&changes) {
                    if !matches!(outcome, ItemOutcome::Done(_)) {
                        failed.insert(ip.clone());
                    }
                    phase(Vec::new(), vec![outcome], &mut BTreeSet::new());
                }
            } else {
                if batch_failed {
                    failed.extend(changes.iter().map(|(ip, _)| ip.clone()));
                }
                phase(Vec::new(), outcomes, &mut BTreeSet::new());
            }
        }
    }

    // 5. Items.
    if table.is_some() {
        let mut steps: Vec<Step> = Vec::new();
        steps.extend(plan.releases.iter().filter(|r| !failed.contains(&r.public_ip)).filter_map(|r| {
            let item = r.item.clone()?;
            Some(Step::Item { ip: r.public_ip.clone(), item, owner: r.instance_id.clone() })
        }));
        let associations = associations.lock().unwrap_or_else(|p| p.into_inner()).clone();
        steps.extend(plan.binds.iter().filter(|b| !failed.contains(&b.public_ip)).filter_map(|b| {
            let association = associations.get(&b.public_ip)?;
            Some(Step::Item {
                ip: b.public_ip.clone(),
                item: b.item(association, now),
                owner: Some(b.instance_id.clone()),
            })
        }));
        steps.extend(plan.repairs.iter().filter_map(|r| {
            let item = r.item.clone()?;
            Some(Step::Item { ip: r.public_ip.clone(), item, owner: Some(r.instance_id.clone()) })
        }));
        let outcomes = engine.run_group("address", vec![steps.clone()], run, stops_further_writes).await;
        phase(steps, outcomes, &mut failed);
    }
    results
}

fn log(step: &Step, result: &Result<(), AwsError>) {
    let (resource, change) = (step.resource(), step.describe());
    match result {
        Ok(()) => info!(resource, change, "eip change made"),
        Err(err) => error!(resource, change, code = err.code().unwrap_or("-"), error = %err, hint = err.hint(),
                           "eip change failed"),
    }
}
