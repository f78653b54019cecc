//! The eip job's writes, in the order that keeps every state safe, as
//! phases of the shared engine (a resource whose earlier write failed gets
//! no later write):
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
//!    for an address someone else associated meanwhile; the association ids
//!    go to the next phase by value;
//! 4. then, at once (both depend on the association alone): the record
//!    changes, in as few Route 53 batches as its limits allow and at Route
//!    53's own pace (a name only ever points at an address its node holds),
//!    and the items of the binds and repairs; a batch Route 53 refuses is
//!    tried again change by change within its step.
//!
//! A crash or failure after any step leaves a state the next plan repairs:
//! a claim without an association is resumed, an association without a
//! record or item is repaired, a disassociated address with a record or an
//! allocated item is released again.

use std::collections::{BTreeMap, BTreeSet};

use super::config::Config;
use super::plan::EipPlan;
use super::report::Row;
use crate::aws::dynamodb::{Binding, BindingStore};
use crate::aws::ec2::{ASSOCIATION_NOT_FOUND, Addresses, AwsError};
use crate::aws::route53::{RecordChange, Route53, batches};
use crate::shared::apply::{Engine, Phases, RowDetail, Step, stops_further_writes};
use crate::shared::limiter::WriteLimiter;

/// The services the eip job writes, and Route 53's own pace.
pub struct Clients<'a, E, R, B> {
    pub ec2: &'a E,
    pub route53: &'a R,
    pub bindings: &'a B,
    pub dns_limiter: &'a WriteLimiter,
}

/// What one step does.
#[derive(Clone, Debug)]
enum Write {
    Disassociate {
        association_id: String,
    },
    /// Written only if the item is not allocated to anyone but `owners`.
    Item {
        item: Binding,
        owners: Vec<String>,
    },
    /// Returns the association id.
    Associate {
        allocation_id: String,
        instance_id: String,
        network_interface_id: Option<String>,
    },
    /// Each change with the resource it is for (the address, or the name).
    Records(Vec<(String, RecordChange)>),
}

fn describe(changes: &[RecordChange]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|c| match c {
            RecordChange::Upsert(r) => format!("UPSERT {} A {}", r.name, r.values.join(",")),
            RecordChange::Delete(r) => format!("DELETE {} A {}", r.name, r.values.join(",")),
        })
        .collect();
    parts.join("; ")
}

/// A record batch writes the zone; its row names the addresses (or names)
/// whose records it carries, so that the report counts a bind, release or
/// repair whole only once every write of its address went through, this
/// batch included.
fn records_step(zone: &str, changes: &[(String, RecordChange)]) -> Step<Write> {
    let plain: Vec<RecordChange> = changes.iter().map(|(_, c)| c.clone()).collect();
    Step::new(zone, describe(&plain), Write::Records(changes.to_vec()))
}

/// What an eip row keeps besides its resource: for a record batch, the
/// addresses (or names) it carries; nothing for a write of one address.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Carried {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

impl RowDetail<Carried> for Write {
    fn row_detail(&self) -> Carried {
        match self {
            Write::Records(changes) => Carried { addresses: changes.iter().map(|(ip, _)| ip.clone()).collect() },
            _ => Carried::default(),
        }
    }
}

fn item_step(ip: &str, item: Binding, owners: Vec<String>, what: &str) -> Step<Write> {
    let change = match &item.instance_id {
        Some(id) => format!("{what} for {id}"),
        None => what.to_owned(),
    };
    Step::new(ip, change, Write::Item { item, owners })
}

/// A DELETE that Route 53 refused because the record is not there: what it
/// was for (another invocation deleted it first, say a Spot warning's run
/// and the schedule's at once), so a success, as a missing route is for
/// the routes job.
fn already_gone(change: &RecordChange, e: &AwsError) -> bool {
    matches!(change, RecordChange::Delete(_)) && refused(e) && e.message.contains("but it was not found")
}

/// Route 53 refused the batch's content (rather than being busy or throttled).
fn refused(e: &AwsError) -> bool {
    e.is_code("InvalidChangeBatch") || e.is_code("InvalidInput")
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
) -> Vec<Row> {
    let table = config.table.as_deref().unwrap_or_default();
    let zone = config.dns.as_ref().map(|d| d.zone_id.as_str()).unwrap_or_default();
    let run = |write: &Write| {
        let write = write.clone();
        async move {
            match write {
                Write::Disassociate { association_id } => {
                    match engine.paced(clients.ec2.disassociate_address(&association_id)).await {
                        Err(e) if e.is_code(ASSOCIATION_NOT_FOUND) => Ok(String::new()),
                        other => other.map(|()| String::new()),
                    }
                }
                Write::Item { item, owners } => {
                    let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
                    // The table's capacity is its own: not paced by EC2's
                    // bucket.
                    engine.paced_by(None, clients.bindings.put(table, &item, &owners)).await.map(|()| String::new())
                }
                Write::Associate { allocation_id, instance_id, network_interface_id } => {
                    let associate =
                        clients.ec2.associate_address(&allocation_id, &instance_id, network_interface_id.as_deref());
                    engine.paced(associate).await
                }
                Write::Records(changes) => {
                    let changes: Vec<RecordChange> = changes.into_iter().map(|(_, c)| c).collect();
                    let send = |changes: Vec<RecordChange>| async move {
                        engine.paced_by(Some(clients.dns_limiter), clients.route53.change(zone, &changes)).await
                    };
                    // One bad change fails its whole batch: a batch Route 53
                    // refused is tried again change by change, so that the
                    // others go through and the error is the bad one's. A
                    // throttled or failed batch is not split: more requests
                    // do not help it.
                    match send(changes.clone()).await {
                        Err(e) if refused(&e) && changes.len() > 1 => {
                            let mut first_error = None;
                            for change in changes {
                                match send(vec![change.clone()]).await {
                                    Err(e) if already_gone(&change, &e) => {}
                                    Err(e) => {
                                        first_error.get_or_insert(e);
                                    }
                                    Ok(()) => {}
                                }
                            }
                            first_error.map_or(Ok(String::new()), Err)
                        }
                        Err(e) if changes.len() == 1 && already_gone(&changes[0], &e) => Ok(String::new()),
                        other => other.map(|()| String::new()),
                    }
                }
            }
        }
    };
    let mut phases = Phases::new(engine, "eip", config.dry_run);

    // 1. Releases disassociate.
    let steps: Vec<Step<Write>> = plan
        .releases
        .iter()
        .filter_map(|r| {
            let association_id = r.association_id.clone()?;
            Some(Step::new(
                &r.public_ip,
                format!("disassociate {association_id}"),
                Write::Disassociate { association_id },
            ))
        })
        .collect();
    phases.run("address", steps, run, |_| false).await;

    // 2. Released items and claims, at once. An address bound again in this
    // run is claimed from its former holder: its claim replaces the
    // released item, whose write would only come first for nothing.
    let rebound: BTreeSet<&str> = plan.binds.iter().map(|b| b.public_ip.as_str()).collect();
    if config.table.is_some() {
        let mut steps: Vec<Step<Write>> = Vec::new();
        steps.extend(plan.releases.iter().filter(|r| !rebound.contains(r.public_ip.as_str())).filter_map(|r| {
            let item = r.item.clone()?;
            Some(item_step(&r.public_ip, item, owners([&r.item_owner]), "item released"))
        }));
        steps.extend(plan.binds.iter().filter(|b| !b.resumed).map(|b| {
            let owners = owners([&Some(b.instance_id.clone()), &b.item_owner]);
            item_step(&b.public_ip, b.claim(now), owners, "claim")
        }));
        phases.run("address", steps, run, stops_further_writes).await;
    }

    // 3. Associate; the association ids go on to the items.
    let steps: Vec<Step<Write>> = plan
        .binds
        .iter()
        .map(|b| {
            let write = Write::Associate {
                allocation_id: b.allocation_id.clone(),
                instance_id: b.instance_id.clone(),
                network_interface_id: b.network_interface_id.clone(),
            };
            Step::new(&b.public_ip, format!("associate with {}", b.instance_id), write)
        })
        .collect();
    let associated = phases.run("address", steps, run, stops_further_writes).await;
    let associations: BTreeMap<String, String> =
        associated.done.into_iter().map(|(step, association)| (step.resource, association)).collect();

    // 4. Records and items, at once.
    let mut changes: Vec<(String, RecordChange)> = Vec::new();
    if let Some(dns) = &config.dns {
        let dns = super::model::Dns { suffix: dns.suffix.clone(), ttl: dns.ttl };
        // A released address bound again keeps its name: the bind's UPSERT
        // stands for the release's DELETE (one change per name and batch).
        changes.extend(
            plan.releases
                .iter()
                .filter(|r| !phases.has_failed(&r.public_ip) && !associations.contains_key(&r.public_ip))
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
    let plain: Vec<RecordChange> = changes.iter().map(|(_, c)| c.clone()).collect();
    let mut steps: Vec<Step<Write>> = Vec::new();
    let mut next = 0;
    for batch in batches(&plain) {
        steps.push(records_step(zone, &changes[next..next + batch.len()]));
        next += batch.len();
    }
    if config.table.is_some() {
        steps.extend(plan.binds.iter().filter_map(|b| {
            let association = associations.get(&b.public_ip)?;
            let item = b.item(association, now);
            Some(item_step(&b.public_ip, item, vec![b.instance_id.clone()], "item allocated"))
        }));
        steps.extend(plan.repairs.iter().filter_map(|r| {
            let item = r.item.clone()?;
            let owners = owners([&Some(r.instance_id.clone()), &r.item_owner]);
            Some(item_step(&r.public_ip, item, owners, "item repaired"))
        }));
    }
    phases.run("address", steps, run, |_| false).await;
    phases.results()
}
