//! The eip job's writes, in the order that keeps every state safe:
//!
//! 1. releases disassociate first, so that an address is never named for
//!    a node that no longer holds it longer than one step;
//! 2. then, with a table, the released items and the claims at once: a
//!    released item is conditioned on the instance the item named when it
//!    was read, and a claim (a conditional write: absent, not allocated, or
//!    naming the node or that former holder) on the same, so that an
//!    address released in this run is claimed straight from its former
//!    holder by a waiting node, and two invocations can never hand one
//!    address to two nodes;
//! 3. then associate it with `AllowReassociation=false`, which EC2 refuses
//!    for an address someone else associated meanwhile;
//! 4. then, at once (both depend on the association alone): the record
//!    changes, in as few Route 53 batches as its limits allow and at Route
//!    53's own pace (a name only ever points at an address its node holds),
//!    and the items of the binds and repairs.
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
use crate::aws::ec2::{ASSOCIATION_NOT_FOUND, Addresses, AwsError};
use crate::aws::route53::{RecordChange, Route53, batches};
use crate::shared::apply::{Engine, ItemOutcome, stops_further_writes};
use crate::shared::limiter::WriteLimiter;

/// The services the eip job writes, and Route 53's own pace.
pub struct Clients<'a, E, R, B> {
    pub ec2: &'a E,
    pub route53: &'a R,
    pub bindings: &'a B,
    pub dns_limiter: &'a WriteLimiter,
}

#[derive(Clone, Debug)]
enum Step {
    Disassociate {
        ip: String,
        association_id: String,
    },
    /// An item write: a claim, a released item, or the binding with its
    /// association; written only if the item is not allocated to anyone but
    /// `owners`.
    Item {
        ip: String,
        item: Binding,
        owners: Vec<String>,
        what: &'static str,
    },
    Associate {
        ip: String,
        allocation_id: String,
        instance_id: String,
        network_interface_id: Option<String>,
    },
    Records(Vec<(String, RecordChange)>),
}

impl Step {
    fn resource(&self) -> String {
        match self {
            Step::Disassociate { ip, .. } | Step::Item { ip, .. } | Step::Associate { ip, .. } => ip.clone(),
            Step::Records(changes) if changes.len() == 1 => changes[0].0.clone(),
            Step::Records(_) => "records".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Step::Disassociate { association_id, .. } => format!("disassociate {association_id}"),
            Step::Item { item, what, .. } => match &item.instance_id {
                Some(id) => format!("{what} for {id}"),
                None => (*what).to_owned(),
            },
            Step::Associate { instance_id, .. } => format!("associate with {instance_id}"),
            Step::Records(changes) => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|(_, c)| match c {
                        RecordChange::Upsert(r) => format!("UPSERT {} A {}", r.name, r.values.join(",")),
                        RecordChange::Delete(r) => format!("DELETE {} A {}", r.name, r.values.join(",")),
                    })
                    .collect();
                parts.join("; ")
            }
        }
    }
}

fn owners<'a>(ids: impl IntoIterator<Item = &'a Option<String>>) -> Vec<String> {
    ids.into_iter().flatten().cloned().collect()
}

pub async fn apply<E: Addresses, R: Route53, B: BindingStore>(
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
                Step::Item { item, owners, .. } => {
                    let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
                    // The table's capacity is its own: not paced by EC2's bucket.
                    engine.paced_by(None, clients.bindings.put(table.unwrap_or_default(), item, &owners)).await
                }
                Step::Associate { ip, allocation_id, instance_id, network_interface_id } => {
                    let associate =
                        clients.ec2.associate_address(allocation_id, instance_id, network_interface_id.as_deref());
                    let id = engine.paced(associate).await?;
                    associations.lock().unwrap_or_else(|p| p.into_inner()).insert(ip.clone(), id);
                    Ok(())
                }
                Step::Records(changes) => {
                    let changes: Vec<RecordChange> = changes.iter().map(|(_, c)| c.clone()).collect();
                    let change = clients.route53.change(zone.unwrap_or_default(), &changes);
                    engine.paced_by(Some(clients.dns_limiter), change).await
                }
            };
            log(&step, &result);
            result
        }
    };
    let mut phase = |outcomes: Vec<ItemOutcome<Step>>, failed: &mut BTreeSet<String>| {
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
        return planned(plan);
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
    let outcomes = engine.run_group("address", vec![steps], run, |_| false).await;
    phase(outcomes, &mut failed);

    // 2. Released items and claims, at once. An address bound again in this
    // run is claimed from its former holder: its claim replaces the
    // released item, whose write would only come first for nothing.
    let rebound: BTreeSet<&str> = plan.binds.iter().map(|b| b.public_ip.as_str()).collect();
    if table.is_some() {
        let mut steps: Vec<Step> = Vec::new();
        steps.extend(
            plan.releases
                .iter()
                .filter(|r| !failed.contains(&r.public_ip) && !rebound.contains(r.public_ip.as_str()))
                .filter_map(|r| {
                    let item = r.item.clone()?;
                    Some(Step::Item {
                        ip: r.public_ip.clone(),
                        item,
                        owners: owners([&r.item_owner]),
                        what: "item released",
                    })
                }),
        );
        steps.extend(plan.binds.iter().filter(|b| !b.resumed && !failed.contains(&b.public_ip)).map(|b| Step::Item {
            ip: b.public_ip.clone(),
            item: b.claim(now),
            owners: owners([&Some(b.instance_id.clone()), &b.item_owner]),
            what: "claim",
        }));
        let outcomes = engine.run_group("address", vec![steps], run, stops_further_writes).await;
        phase(outcomes, &mut failed);
    }

    // 3. Associate.
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
    let outcomes = engine.run_group("address", vec![steps], run, stops_further_writes).await;
    phase(outcomes, &mut failed);
    let associations = associations.lock().unwrap_or_else(|p| p.into_inner()).clone();

    // 4. Records and items, at once.
    let mut changes: Vec<(String, RecordChange)> = Vec::new();
    if let Some(dns) = &config.dns {
        let dns = super::model::Dns { suffix: dns.suffix.clone(), ttl: dns.ttl };
        // A released address bound again keeps its name: the bind's UPSERT
        // stands for the release's DELETE (one change per name and batch).
        changes.extend(
            plan.releases
                .iter()
                .filter(|r| !failed.contains(&r.public_ip) && !associations.contains_key(&r.public_ip))
                .filter_map(|r| r.record_delete.clone().map(|rec| (r.public_ip.clone(), RecordChange::Delete(rec)))),
        );
        changes.extend(
            plan.binds
                .iter()
                .filter(|b| associations.contains_key(&b.public_ip))
                .map(|b| (b.public_ip.clone(), RecordChange::Upsert(b.record(&dns)))),
        );
        changes.extend(plan.repairs.iter().filter_map(|r| r.record.clone().map(|c| (r.public_ip.clone(), c))));
        changes.extend(plan.orphan_records.iter().map(|r| (r.name.clone(), RecordChange::Delete(r.clone()))));
    }
    let mut items: Vec<Step> = Vec::new();
    if table.is_some() {
        items.extend(plan.binds.iter().filter_map(|b| {
            let association = associations.get(&b.public_ip)?;
            Some(Step::Item {
                ip: b.public_ip.clone(),
                item: b.item(association, now),
                owners: vec![b.instance_id.clone()],
                what: "item allocated",
            })
        }));
        items.extend(plan.repairs.iter().filter_map(|r| {
            let item = r.item.clone()?;
            let owners = owners([&Some(r.instance_id.clone()), &r.item_owner]);
            Some(Step::Item { ip: r.public_ip.clone(), item, owners, what: "item repaired" })
        }));
    }
    let records = records(engine, &run, &changes);
    let items = engine.run_group("address", vec![items], run, stops_further_writes);
    let (records, items) = futures::join!(records, items);
    phase(records, &mut failed);
    phase(items, &mut failed);
    results
}

/// The record changes in Route 53's batches, one after another (they share
/// one per-account rate). One bad change fails its whole batch: a batch
/// Route 53 refuses is tried again change by change, so that the others go
/// through and the bad one is named.
async fn records<F, Fut>(engine: &Engine<'_>, run: &F, changes: &[(String, RecordChange)]) -> Vec<ItemOutcome<Step>>
where
    F: Fn(&Step) -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    let mut outcomes = Vec::new();
    let plain: Vec<RecordChange> = changes.iter().map(|(_, c)| c.clone()).collect();
    let mut next = 0;
    for batch in batches(&plain) {
        let keyed: Vec<(String, RecordChange)> = changes[next..next + batch.len()].to_vec();
        next += batch.len();
        let step = Step::Records(keyed.clone());
        let result = engine.run_group("zone", vec![vec![step]], run, |_| false).await;
        // Only a refused change is worth finding; a throttled or failed
        // request is not made better by more requests.
        let refused = result.iter().any(
            |o| matches!(o, ItemOutcome::Failed(_, e) if e.is_code("InvalidChangeBatch") || e.is_code("InvalidInput")),
        );
        if refused && keyed.len() > 1 {
            let singles: Vec<Step> = keyed.into_iter().map(|c| Step::Records(vec![c])).collect();
            outcomes.extend(engine.run_group("zone", vec![singles], run, |_| false).await);
        } else {
            outcomes.extend(result);
        }
    }
    outcomes
}

/// A dry run's report: one planned line per bind, release, repair and
/// orphan record.
fn planned(plan: &EipPlan) -> Vec<WriteResult> {
    let line = |resource: &str, change: String| WriteResult {
        resource: resource.to_owned(),
        change,
        status: WriteStatus::Planned,
    };
    let mut results = Vec::new();
    results.extend(plan.binds.iter().map(|b| line(&b.public_ip, format!("bind to {}", b.instance_id))));
    results.extend(plan.releases.iter().map(|r| line(&r.public_ip, format!("release ({})", r.reason))));
    results.extend(plan.repairs.iter().map(|r| line(&r.public_ip, "repair".into())));
    results.extend(
        plan.orphan_records.iter().map(|r| line(&r.name, format!("DELETE {} A {}", r.name, r.values.join(",")))),
    );
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
