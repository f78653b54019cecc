//! The `eip` planner: from one observation to the changes that leave each node
//! holding one pool address.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::aws::ec2::model::Leaving;
pub use crate::aws::route53::RecordChange;
use crate::jobs::eip::model::{
    ARecord, Binding, Dns, Instance, PENDING, PoolAddress, RUNNING, Settings, dns_name, ip_cmp,
};

/// The changes of one invocation.
///
/// Apply order matters: releases first, then binds, then repairs. An address
/// released here may be bound to a waiting node in the same plan, so that one
/// application reaches the fixed point; its claim (a conditional item write)
/// only succeeds once the release has been written, which keeps two invocations
/// from handing it out twice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EipPlan {
    /// By instance id.
    pub binds: Vec<Bind>,
    /// Nodes whose address, record and item are already right, by instance id.
    pub keeps: Vec<Keep>,
    /// Nodes that keep their address but need their record or item rewritten,
    /// by instance id.
    pub repairs: Vec<Repair>,
    /// By address.
    pub releases: Vec<Release>,
    /// Nodes left without an address because the pool ran out, by id.
    pub unbound: Vec<String>,
    /// By address.
    pub left_alone: Vec<LeftAlone>,
    /// Releases a guard holds back (rule 5a: the node selector matches no
    /// instance of the VPC), by address.
    pub withheld: Vec<Release>,
    /// Nodes that get no pool address because their primary private address
    /// holds an Elastic IP from outside the pool, which associating would take
    /// off them (rule 3), by id.
    pub nodes_left_alone: Vec<NodeLeftAlone>,
    /// Records under the suffix that name an address no longer in the pool and
    /// associated nowhere (its pool tag removed, or released back to AWS), by
    /// name.
    pub orphan_records: Vec<ARecord>,
    /// Pool addresses still claimable once the plan is applied.
    pub pool_free_after: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeLeftAlone {
    pub instance_id: String,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bind {
    pub instance_id: String,
    /// The primary interface; `None` only for an instance that reported none,
    /// to be associated by instance id.
    pub network_interface_id: Option<String>,
    pub allocation_id: String,
    pub public_ip: String,
    pub dns_name: Option<String>,
    /// Completes a claim an earlier invocation wrote but did not finish: the
    /// item already names this node.
    pub resumed: bool,
    /// The instance the address's item names as allocated when it was read, if
    /// another: the claim is conditioned on it (an address released in this
    /// plan is claimed straight from its former holder).
    pub item_owner: Option<String>,
}

impl Bind {
    /// The item that claims the address before it is associated.
    pub fn claim(&self, now: u64) -> Binding {
        Binding {
            public_ip: self.public_ip.clone(),
            allocation_id: self.allocation_id.clone(),
            instance_id: Some(self.instance_id.clone()),
            association_id: None,
            dns_name: self.dns_name.clone(),
            allocated: true,
            updated_at: now,
        }
    }

    /// The item once the association exists.
    pub fn item(&self, association_id: &str, now: u64) -> Binding {
        Binding { association_id: Some(association_id.to_string()), ..self.claim(now) }
    }

    pub fn record(&self, dns: &Dns) -> ARecord {
        ARecord::for_address(&self.public_ip, dns)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Keep {
    pub instance_id: String,
    pub public_ip: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub instance_id: String,
    pub public_ip: String,
    pub allocation_id: String,
    pub association_id: Option<String>,
    pub record: Option<RecordChange>,
    pub item: Option<Binding>,
    /// The instance the item names as allocated when it was read, if another:
    /// the rewrite is conditioned on what the item says now, so an item naming
    /// the wrong instance is repaired (rule 7).
    pub item_owner: Option<String>,
    /// The node is leaving (rule 8): its record is deleted, its address and
    /// item kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaving: Option<Leaving>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Release {
    pub public_ip: String,
    pub allocation_id: String,
    /// `None`: the address is not associated, there is nothing to disassociate.
    pub association_id: Option<String>,
    /// The holder, or the instance a stale item names.
    pub instance_id: Option<String>,
    pub reason: ReleaseReason,
    /// The record exactly as read, since Route 53's DELETE must repeat its TTL
    /// and values.
    pub record_delete: Option<ARecord>,
    /// Allocated false, without instance or association.
    pub item: Option<Binding>,
    /// The instance the item names as allocated when it was read: the released
    /// item is conditioned on it.
    pub item_owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The holder is an instance of the VPC in this EC2 state (anything but
    /// running or pending).
    NotRunning(String),
    /// The holder runs in the VPC but no longer matches the node tags.
    NoLongerMatches,
    /// The holder (instance or interface) matches no known instance.
    InstanceGone,
    /// The holder is a node that keeps another pool address.
    SecondAddress,
    /// The address is free but its item is still allocated, to an instance that
    /// cannot complete the claim.
    ItemStale,
    /// The address is free and unclaimed, yet its record is still there (a
    /// release that stopped midway).
    RecordLeft,
}

impl fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseReason::NotRunning(state) => write!(f, "node is {state}"),
            ReleaseReason::NoLongerMatches => f.write_str("instance no longer matches the node tags"),
            ReleaseReason::InstanceGone => f.write_str("instance is gone"),
            ReleaseReason::SecondAddress => f.write_str("node keeps another pool address"),
            ReleaseReason::ItemStale => f.write_str("stale allocation in the table"),
            ReleaseReason::RecordLeft => f.write_str("record left behind"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftAlone {
    pub public_ip: String,
    pub why: String,
}

/// Sizes of a plan, for the report and its metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub binds: usize,
    pub resumed: usize,
    pub keeps: usize,
    pub repairs: usize,
    pub releases: usize,
    pub unbound: usize,
    pub left_alone: usize,
    pub withheld: usize,
    pub nodes_left_alone: usize,
    pub orphan_records: usize,
    pub pool_free_after: usize,
}

impl EipPlan {
    /// Nothing to write: keeps, unbound nodes, withheld releases and what is
    /// left alone change nothing.
    pub fn is_empty(&self) -> bool {
        self.binds.is_empty() && self.repairs.is_empty() && self.releases.is_empty() && self.orphan_records.is_empty()
    }

    /// Planned changes: binds, repairs, releases and orphan records.
    pub fn changes(&self) -> usize {
        self.binds.len() + self.repairs.len() + self.releases.len() + self.orphan_records.len()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            binds: self.binds.len(),
            resumed: self.binds.iter().filter(|bind| bind.resumed).count(),
            keeps: self.keeps.len(),
            repairs: self.repairs.len(),
            releases: self.releases.len(),
            unbound: self.unbound.len(),
            left_alone: self.left_alone.len(),
            withheld: self.withheld.len(),
            nodes_left_alone: self.nodes_left_alone.len(),
            orphan_records: self.orphan_records.len(),
            pool_free_after: self.pool_free_after,
        }
    }
}

impl Release {
    /// The plan's line.
    pub fn line(&self) -> String {
        match &self.instance_id {
            Some(id) => format!("- {id} -> {} released ({})", self.public_ip, self.reason),
            None => format!("- {} released ({})", self.public_ip, self.reason),
        }
    }
}

impl Bind {
    /// The plan's line.
    pub fn line(&self) -> String {
        let name = self.dns_name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let resumed = if self.resumed { ", resuming an earlier claim" } else { "" };
        format!("+ {} <- {}{name}{resumed}", self.instance_id, self.public_ip)
    }
}

impl Repair {
    /// What the repair rewrites: `record`, `item`, or both.
    pub fn parts(&self) -> String {
        let parts = [self.record.as_ref().map(|_| "record"), self.item.as_ref().map(|_| "item")];
        parts.into_iter().flatten().collect::<Vec<_>>().join(", ")
    }

    /// The plan's line.
    pub fn line(&self) -> String {
        match (&self.leaving, &self.record) {
            (Some(why), Some(RecordChange::Delete(_))) => {
                format!("~ {} record deleted: {} is {why}", self.public_ip, self.instance_id)
            }
            _ => format!("~ repair {} {}: {}", self.instance_id, self.public_ip, self.parts()),
        }
    }
}

/// The plan's line of a record whose address left the pool.
pub fn orphan_record_line(record: &ARecord) -> String {
    format!("- {} A {} deleted (the address is no longer in the pool)", record.name, record.values.join(","))
}

impl fmt::Display for EipPlan {
    /// In apply order, then what stays as it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for release in &self.releases {
            writeln!(f, "{}", release.line())?;
        }
        for bind in &self.binds {
            writeln!(f, "{}", bind.line())?;
        }
        for repair in &self.repairs {
            writeln!(f, "{}", repair.line())?;
        }
        for record in &self.orphan_records {
            writeln!(f, "{}", orphan_record_line(record))?;
        }
        for keep in &self.keeps {
            writeln!(f, "= {} {}", keep.instance_id, keep.public_ip)?;
        }
        for id in &self.unbound {
            writeln!(f, "? {id} no free address in the pool")?;
        }
        for release in &self.withheld {
            let holder = release.instance_id.as_deref().unwrap_or("-");
            writeln!(
                f,
                "? {holder} -> {} release withheld ({}): the node selector matches no instance of the VPC",
                release.public_ip, release.reason
            )?;
        }
        for node in &self.nodes_left_alone {
            writeln!(f, ". {} left alone: {}", node.instance_id, node.why)?;
        }
        for alone in &self.left_alone {
            writeln!(f, ". {} left alone: {}", alone.public_ip, alone.why)?;
        }
        Ok(())
    }
}

/// Who holds an associated pool address, and what that means for it.
enum Holder<'a> {
    Free,
    Node(&'a Instance),
    Release(ReleaseReason, Option<String>),
    LeftAlone(String),
}

/// The observation, indexed; items and records are only looked at when the
/// settings use them.
struct View<'a> {
    settings: &'a Settings,
    now: u64,
    instances: BTreeMap<&'a str, &'a Instance>,
    eni_owner: BTreeMap<&'a str, &'a Instance>,
    items: BTreeMap<&'a str, &'a Binding>,
    /// By lower-cased name: DNS names do not care about case, and Route 53
    /// lists them lower-cased.
    records: BTreeMap<String, &'a ARecord>,
}

impl<'a> View<'a> {
    fn new(
        instances: &'a [Instance],
        bindings: &'a [Binding],
        records: &'a [ARecord],
        settings: &'a Settings,
        now: u64,
    ) -> Self {
        let mut view = View {
            settings,
            now,
            instances: BTreeMap::new(),
            eni_owner: BTreeMap::new(),
            items: BTreeMap::new(),
            records: BTreeMap::new(),
        };
        for instance in instances {
            view.instances.entry(&instance.id).or_insert(instance);
            for eni in &instance.eni_ids {
                view.eni_owner.entry(eni).or_insert(instance);
            }
        }
        if settings.table {
            for item in bindings {
                view.items.entry(&item.public_ip).or_insert(item);
            }
        }
        if settings.dns.is_some() {
            for record in records {
                view.records.entry(record.name.trim_end_matches('.').to_ascii_lowercase()).or_insert(record);
            }
        }
        view
    }

    fn holder(&self, address: &PoolAddress) -> Holder<'a> {
        if !address.is_associated() {
            return Holder::Free;
        }
        let by_id = address.instance_id.as_deref().and_then(|id| self.instances.get(id).copied());
        let by_eni = || address.network_interface_id.as_deref().and_then(|eni| self.eni_owner.get(eni).copied());
        let Some(instance) = by_id.or_else(by_eni) else {
            return Holder::Release(ReleaseReason::InstanceGone, address.instance_id.clone());
        };
        let id = Some(instance.id.clone());
        if instance.vpc_id != self.settings.vpc_id {
            Holder::LeftAlone(format!("held by {} outside {}", instance.id, self.settings.vpc_id))
        } else if instance.state == PENDING {
            Holder::LeftAlone(format!("held by {}, still pending", instance.id))
        } else if instance.state != RUNNING {
            Holder::Release(ReleaseReason::NotRunning(instance.state.clone()), id)
        } else if !self.settings.nodes.selects(instance, &self.settings.vpc_id) {
            Holder::Release(ReleaseReason::NoLongerMatches, id)
        } else {
            Holder::Node(instance)
        }
    }

    fn node(&self, id: &str) -> Option<&'a Instance> {
        self.instances.get(id).copied().filter(|instance| self.settings.is_node(instance))
    }

    /// The instance the address's item names as allocated, if any other than
    /// `except`.
    fn item_owner(&self, address: &PoolAddress, except: Option<&str>) -> Option<String> {
        self.claim(address).flatten().filter(|&owner| Some(owner) != except).map(str::to_owned)
    }

    /// `Some(claimant)` when the item marks the address allocated.
    fn claim(&self, address: &PoolAddress) -> Option<Option<&'a str>> {
        let item = self.items.get(address.public_ip.as_str())?;
        item.allocated.then_some(item.instance_id.as_deref())
    }

    fn record(&self, address: &PoolAddress) -> Option<&'a ARecord> {
        let dns = self.settings.dns.as_ref()?;
        self.records.get(&dns_name(&address.public_ip, &dns.suffix).to_ascii_lowercase()).copied()
    }

    fn dns_name(&self, address: &PoolAddress) -> Option<String> {
        self.settings.dns.as_ref().map(|dns| dns_name(&address.public_ip, &dns.suffix))
    }

    fn release(&self, address: &PoolAddress, reason: ReleaseReason, instance_id: Option<String>) -> Release {
        Release {
            public_ip: address.public_ip.clone(),
            allocation_id: address.allocation_id.clone(),
            association_id: address.association_id.clone(),
            instance_id,
            reason,
            record_delete: self.record(address).cloned(),
            item: self.settings.table.then(|| Binding::released(address, self.now)),
            item_owner: self.item_owner(address, None),
        }
    }

    fn bind(&self, node: &Instance, address: &PoolAddress, resumed: bool) -> Bind {
        Bind {
            instance_id: node.id.clone(),
            network_interface_id: node.primary_eni().map(str::to_string),
            allocation_id: address.allocation_id.clone(),
            public_ip: address.public_ip.clone(),
            dns_name: self.dns_name(address),
            resumed,
            item_owner: self.item_owner(address, Some(&node.id)),
        }
    }

    /// Rule 3: the kept address's record and item, rewritten only where they
    /// differ from what they should be.
    fn repair(&self, node: &Instance, address: &PoolAddress) -> Option<Repair> {
        let record = self.settings.dns.as_ref().and_then(|dns| {
            // Rule 8: new clients stop resolving a node that is about to go;
            // the record is deleted as it was read.
            if node.is_leaving() {
                return self.record(address).map(|have| RecordChange::Delete(have.clone()));
            }
            let want = ARecord::for_address(&address.public_ip, dns);
            let right = self.record(address).is_some_and(|have| have.ttl == want.ttl && have.values == want.values);
            (!right).then_some(RecordChange::Upsert(want))
        });
        let item = self.settings.table.then(|| Binding {
            public_ip: address.public_ip.clone(),
            allocation_id: address.allocation_id.clone(),
            instance_id: Some(node.id.clone()),
            association_id: address.association_id.clone(),
            dns_name: self.dns_name(address),
            allocated: true,
            updated_at: self.now,
        });
        let item =
            item.filter(|want| !self.items.get(address.public_ip.as_str()).is_some_and(|have| have.same_binding(want)));
        (record.is_some() || item.is_some()).then(|| Repair {
            instance_id: node.id.clone(),
            public_ip: address.public_ip.clone(),
            allocation_id: address.allocation_id.clone(),
            association_id: address.association_id.clone(),
            record,
            item,
            item_owner: self.item_owner(address, Some(&node.id)),
            leaving: node.leaving.clone(),
        })
    }

    /// Rule 3: an Elastic IP from outside the pool on the node's primary
    /// private address, if any.
    fn outside_address_on(&self, node: &Instance, outside: &'a [PoolAddress]) -> Option<&'a PoolAddress> {
        outside.iter().filter(|a| a.is_associated()).find(|a| {
            let on_node = match (a.network_interface_id.as_deref(), node.primary_eni()) {
                (Some(eni), Some(primary)) => eni == primary,
                (Some(_), None) => false,
                (None, _) => a.instance_id.as_deref() == Some(node.id.as_str()),
            };
            // An address whose private address is unknown counts as on the
            // primary one: leaving a node alone is the safe side of not
            // knowing.
            let on_primary = a.private_ip.is_none() || node.private_ip.is_none() || a.private_ip == node.private_ip;
            on_node && on_primary
        })
    }
}

/// Plans one invocation of the `eip` job.
///
/// `instances` must include every instance that holds a pool address, in the
/// VPC or not: a holder missing from it counts as gone, and its address is
/// released. `pool` holds only the pool's addresses, which bounds every address
/// write; `outside` the account's other addresses, which are never written but
/// keep a node that holds one on its primary private address from being bound
/// (rule 3). Items of other addresses are ignored; records of other addresses
/// are only deleted when they follow the job's naming under the suffix and name
/// an address that is associated nowhere (it left the pool, or the account).
pub fn plan(
    instances: &[Instance],
    pool: &[PoolAddress],
    outside: &[PoolAddress],
    bindings: &[Binding],
    records: &[ARecord],
    settings: &Settings,
    now: u64,
) -> EipPlan {
    let view = View::new(instances, bindings, records, settings, now);
    let mut pool: Vec<&PoolAddress> = pool.iter().collect();
    pool.sort_by(|a, b| ip_cmp(&a.public_ip, &b.public_ip).then_with(|| a.allocation_id.cmp(&b.allocation_id)));
    let mut seen = BTreeSet::new();
    pool.retain(|address| seen.insert(address.public_ip.as_str()));

    let mut out = EipPlan::default();
    let mut held: BTreeMap<&str, (&Instance, Vec<&PoolAddress>)> = BTreeMap::new();
    let mut free = Vec::new();
    // Addresses that will be claimable once this plan's releases are written.
    let mut spare = Vec::new();
    for &address in &pool {
        match view.holder(address) {
            Holder::Free => free.push(address),
            Holder::Node(node) => held.entry(&node.id).or_insert((node, Vec::new())).1.push(address),
            Holder::Release(reason, instance_id) => {
                out.releases.push(view.release(address, reason, instance_id));
                spare.push(address);
            }
            Holder::LeftAlone(why) => out.left_alone.push(LeftAlone { public_ip: address.public_ip.clone(), why }),
        }
    }

    // Rule 7: the address the item names wins, else the lowest (addresses are
    // in ascending order).
    for (&id, (node, addresses)) in &held {
        let kept = addresses.iter().find(|address| view.claim(address) == Some(Some(id))).unwrap_or(&addresses[0]);
        for &address in addresses.iter().filter(|address| address.allocation_id != kept.allocation_id) {
            out.releases.push(view.release(address, ReleaseReason::SecondAddress, Some(id.to_string())));
            spare.push(address);
        }
        match view.repair(node, kept) {
            Some(repair) => out.repairs.push(repair),
            None => out.keeps.push(Keep { instance_id: id.to_string(), public_ip: kept.public_ip.clone() }),
        }
    }

    // Rule 3: nodes without a pool address whose primary private address holds
    // one from outside the pool.
    let mut theirs: BTreeMap<&str, &PoolAddress> = BTreeMap::new();
    for node in view.instances.values().filter(|i| settings.is_node(i) && !held.contains_key(i.id.as_str())) {
        if let Some(address) = view.outside_address_on(node, outside) {
            theirs.insert(&node.id, address);
        }
    }

    // A claim on a free address is finished by its node if that node still
    // lacks an address, else it is stale.
    let mut resumed = BTreeSet::new();
    let mut unclaimed = Vec::new();
    for &address in &free {
        let Some(claimant) = view.claim(address) else {
            unclaimed.push(address);
            spare.push(address);
            continue;
        };
        match claimant.and_then(|id| view.node(id)) {
            Some(node)
                if !node.is_leaving()
                    && !held.contains_key(node.id.as_str())
                    && !theirs.contains_key(node.id.as_str())
                    && resumed.insert(node.id.as_str()) =>
            {
                out.binds.push(view.bind(node, address, true));
            }
            _ => {
                out.releases.push(view.release(address, ReleaseReason::ItemStale, claimant.map(str::to_string)));
                spare.push(address);
            }
        }
    }

    // Rule 5a: a node selector that matches no instance of the VPC in any state
    // is a typo, not a cluster whose every node left: its "no longer matches"
    // releases are withheld. Nodes that stop or are gone still release.
    let selector_matches_none = settings.nodes.matches_no_instance(view.instances.values().copied(), &settings.vpc_id);
    if selector_matches_none {
        let (withheld, kept): (Vec<Release>, Vec<Release>) =
            out.releases.drain(..).partition(|r| r.reason == ReleaseReason::NoLongerMatches);
        out.releases = kept;
        let withheld_ips: BTreeSet<&str> = withheld.iter().map(|r| r.public_ip.as_str()).collect();
        spare.retain(|address| !withheld_ips.contains(address.public_ip.as_str()));
        out.withheld = withheld;
    }

    spare.sort_by(|a, b| ip_cmp(&a.public_ip, &b.public_ip));
    let mut spare = spare.into_iter();
    // Rule 8: a leaving node gets no address; it is about to go.
    let waiting = view.instances.values().filter(|instance| settings.is_node(instance) && !instance.is_leaving());
    for node in waiting.filter(|node| !held.contains_key(node.id.as_str()) && !resumed.contains(node.id.as_str())) {
        if let Some(address) = theirs.get(node.id.as_str()) {
            let why = format!(
                "its primary private address holds {}, an Elastic IP from outside the pool, which associating would take off it",
                address.public_ip
            );
            out.nodes_left_alone.push(NodeLeftAlone { instance_id: node.id.clone(), why });
            continue;
        }
        match spare.next() {
            Some(address) => out.binds.push(view.bind(node, address, false)),
            None => out.unbound.push(node.id.clone()),
        }
    }
    out.pool_free_after = spare.len();

    let bound: BTreeSet<&str> = out.binds.iter().map(|bind| bind.allocation_id.as_str()).collect();
    for address in unclaimed.into_iter().filter(|address| !bound.contains(address.allocation_id.as_str())) {
        if view.record(address).is_some() {
            let release = view.release(address, ReleaseReason::RecordLeft, None);
            out.releases.push(Release { item: None, ..release });
        }
    }

    // Records that follow the job's naming under the suffix but name an address
    // of no pool: collected once that address is associated nowhere (its pool
    // tag removed, or released back to AWS).
    if let Some(dns) = &settings.dns {
        let in_pool: BTreeSet<&str> = pool.iter().map(|a| a.public_ip.as_str()).collect();
        let associated: BTreeSet<&str> =
            outside.iter().filter(|a| a.is_associated()).map(|a| a.public_ip.as_str()).collect();
        for record in view.records.values() {
            let [ip] = record.values.as_slice() else { continue };
            let ours = ip.parse::<std::net::Ipv4Addr>().is_ok()
                && record.name.trim_end_matches('.').eq_ignore_ascii_case(&dns_name(ip, &dns.suffix));
            if ours && !in_pool.contains(ip.as_str()) && !associated.contains(ip.as_str()) {
                out.orphan_records.push((*record).clone());
            }
        }
        out.orphan_records.sort_by(|a, b| a.name.cmp(&b.name));
    }

    out.releases.sort_by(|a, b| ip_cmp(&a.public_ip, &b.public_ip));
    out.withheld.sort_by(|a, b| ip_cmp(&a.public_ip, &b.public_ip));
    out.binds.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    out.nodes_left_alone.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VPC: &str = "vpc-1";
    const SUFFIX: &str = "nodes.example.com";
    const NOW: u64 = 1_700_000_000;

    use crate::shared::nodes::NodeRule;

    fn settings() -> Settings {
        Settings {
            vpc_id: VPC.into(),
            nodes: NodeRule::selector_only("role=edge".parse().unwrap()),
            dns: Some(Dns { suffix: SUFFIX.into(), ttl: 60 }),
            table: true,
        }
    }

    fn node(id: &str) -> Instance {
        Instance::new(id, VPC, RUNNING)
            .with_tags(&[("role", "edge")])
            .with_eni(format!("eni-{id}"))
            .with_eni(format!("eni-{id}-b"))
    }

    fn free(ip: &str) -> PoolAddress {
        PoolAddress { allocation_id: format!("eipalloc-{ip}"), public_ip: ip.into(), ..PoolAddress::default() }
    }

    fn held(ip: &str, instance: &str) -> PoolAddress {
        PoolAddress {
            association_id: Some(format!("eipassoc-{ip}")),
            instance_id: Some(instance.into()),
            network_interface_id: Some(format!("eni-{instance}")),
            ..free(ip)
        }
    }

    fn item(ip: &str, instance: &str) -> Binding {
        Binding {
            public_ip: ip.into(),
            allocation_id: format!("eipalloc-{ip}"),
            instance_id: Some(instance.into()),
            association_id: Some(format!("eipassoc-{ip}")),
            dns_name: Some(dns_name(ip, SUFFIX)),
            allocated: true,
            updated_at: 1,
        }
    }

    fn claim(ip: &str, instance: &str) -> Binding {
        Binding { association_id: None, ..item(ip, instance) }
    }

    fn record(ip: &str) -> ARecord {
        ARecord { name: dns_name(ip, SUFFIX), ttl: 60, values: vec![ip.into()] }
    }

    fn run(instances: &[Instance], pool: &[PoolAddress], items: &[Binding], records: &[ARecord]) -> EipPlan {
        plan(instances, pool, &[], items, records, &settings(), NOW)
    }

    fn bound(plan: &EipPlan) -> Vec<(&str, &str, bool)> {
        plan.binds.iter().map(|b| (b.instance_id.as_str(), b.public_ip.as_str(), b.resumed)).collect()
    }

    fn released(plan: &EipPlan) -> Vec<(&str, ReleaseReason)> {
        plan.releases.iter().map(|r| (r.public_ip.as_str(), r.reason.clone())).collect()
    }

    #[test]
    fn a_new_node_gets_the_lowest_free_address_on_its_primary_interface() {
        let plan = run(&[node("i-1")], &[free("3.0.0.10"), free("3.0.0.9")], &[], &[]);
        assert_eq!(bound(&plan), [("i-1", "3.0.0.9", false)]);
        assert_eq!(plan.binds[0].network_interface_id.as_deref(), Some("eni-i-1"));
        assert_eq!(plan.binds[0].dns_name.as_deref(), Some("3-0-0-9.nodes.example.com"));
        assert_eq!(plan.pool_free_after, 1);
        assert!(plan.releases.is_empty() && plan.unbound.is_empty());
    }

    #[test]
    fn nodes_in_id_order_take_free_addresses_in_ascending_numeric_order() {
        let pool = [free("3.0.0.100"), free("3.0.0.20"), free("3.0.0.3")];
        let plan = run(&[node("i-c"), node("i-a"), node("i-b")], &pool, &[], &[]);
        assert_eq!(bound(&plan), [("i-a", "3.0.0.3", false), ("i-b", "3.0.0.20", false), ("i-c", "3.0.0.100", false)]);
    }

    #[test]
    fn instances_that_are_not_nodes_get_nothing() {
        let other_vpc = Instance { vpc_id: "vpc-2".into(), ..node("i-2") };
        let untagged = Instance { tags: BTreeMap::new(), ..node("i-3") };
        let instances = [node("i-1").in_state("pending"), other_vpc, untagged, node("i-4").in_state("stopped")];
        let plan = run(&instances, &[free("3.0.0.1")], &[], &[]);
        assert!(plan.is_empty());
        assert_eq!(plan.pool_free_after, 1);
    }

    #[test]
    fn a_node_bound_with_record_and_item_is_kept_and_a_retried_event_changes_nothing() {
        let pool = [held("3.0.0.1", "i-1"), free("3.0.0.2")];
        let plan = run(&[node("i-1")], &pool, &[item("3.0.0.1", "i-1")], &[record("3.0.0.1")]);
        assert!(plan.is_empty(), "{plan}");
        assert_eq!(plan.keeps, [Keep { instance_id: "i-1".into(), public_ip: "3.0.0.1".into() }]);
        assert_eq!(plan.pool_free_after, 1);
    }

    #[test]
    fn a_leaving_node_keeps_its_address_and_item_but_its_record_is_deleted_at_once() {
        let pool = [held("3.0.0.1", "i-1"), free("3.0.0.2")];
        let plan = run(
            &[node("i-1").leaving_for(Leaving::SpotInterruption)],
            &pool,
            &[item("3.0.0.1", "i-1")],
            &[record("3.0.0.1")],
        );
        assert!(plan.releases.is_empty() && plan.binds.is_empty(), "{plan}");
        let [repair] = plan.repairs.as_slice() else { panic!("one repair: {plan}") };
        assert_eq!(repair.record, Some(RecordChange::Delete(record("3.0.0.1"))));
        assert_eq!(repair.item, None, "the item still names the node: it keeps the address");
        assert_eq!(plan.to_string(), "~ 3.0.0.1 record deleted: i-1 is leaving: Spot interruption warning\n");
        // Once the record is gone, nothing more until the node stops.
        let again = run(&[node("i-1").leaving_for(Leaving::SpotInterruption)], &pool, &[item("3.0.0.1", "i-1")], &[]);
        assert!(again.is_empty(), "{again}");
        assert_eq!(again.keeps.len(), 1);
        // And then the address goes back to the pool as for any node that
        // stops.
        let stopped = run(
            &[node("i-1").leaving_for(Leaving::SpotInterruption).in_state("stopped")],
            &pool,
            &[item("3.0.0.1", "i-1")],
            &[],
        );
        assert_eq!(released(&stopped), [("3.0.0.1", ReleaseReason::NotRunning("stopped".into()))]);
    }

    #[test]
    fn a_leaving_node_without_an_address_gets_none_and_is_not_counted_waiting() {
        let plan =
            run(&[node("i-1").leaving_for(Leaving::SpotInterruption), node("i-2")], &[free("3.0.0.1")], &[], &[]);
        assert_eq!(bound(&plan), [("i-2", "3.0.0.1", false)]);
        let plan = run(&[node("i-1").leaving_for(Leaving::SpotInterruption)], &[], &[], &[]);
        assert!(plan.unbound.is_empty() && plan.is_empty(), "{plan}");
        // Its earlier claim is not completed either: the claim is released.
        let plan = run(
            &[node("i-1").leaving_for(Leaving::SpotInterruption)],
            &[free("3.0.0.1")],
            &[claim("3.0.0.1", "i-1")],
            &[],
        );
        assert!(plan.binds.is_empty(), "{plan}");
        assert_eq!(released(&plan), [("3.0.0.1", ReleaseReason::ItemStale)]);
    }

    #[test]
    fn the_plan_does_not_depend_on_the_order_of_the_inputs() {
        let instances = [node("i-1"), node("i-2"), node("i-3").in_state("stopped")];
        let pool = [held("3.0.0.5", "i-3"), free("3.0.0.2"), held("3.0.0.1", "i-1")];
        let items = [item("3.0.0.1", "i-1"), claim("3.0.0.2", "i-9")];
        let forward = run(&instances, &pool, &items, &[]);
        let mut reversed = (instances.to_vec(), pool.to_vec(), items.to_vec());
        reversed.0.reverse();
        reversed.1.reverse();
        reversed.2.reverse();
        assert_eq!(forward, run(&reversed.0, &reversed.1, &reversed.2, &[]));
    }

    #[test]
    fn a_missing_record_is_repaired_without_a_new_association() {
        let plan = run(&[node("i-1")], &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[]);
        assert!(plan.binds.is_empty() && plan.releases.is_empty());
        assert_eq!(plan.repairs.len(), 1);
        assert_eq!(plan.repairs[0].record, Some(RecordChange::Upsert(record("3.0.0.1"))));
        assert_eq!(plan.repairs[0].item, None);
    }

    #[test]
    fn a_record_with_other_values_or_another_ttl_is_upserted() {
        let wrong_value = ARecord { values: vec!["9.9.9.9".into()], ..record("3.0.0.1") };
        let wrong_ttl = ARecord { ttl: 300, ..record("3.0.0.1") };
        for wrong in [wrong_value, wrong_ttl] {
            let plan = run(&[node("i-1")], &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[wrong]);
            assert_eq!(plan.repairs[0].record, Some(RecordChange::Upsert(record("3.0.0.1"))));
        }
    }

    #[test]
    fn record_names_match_whatever_their_case_or_trailing_dot() {
        let listed = ARecord { name: "3-0-0-1.Nodes.Example.com.".into(), ..record("3.0.0.1") };
        let plan = run(&[node("i-1")], &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[listed]);
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn a_missing_item_is_written_back() {
        let plan = run(&[node("i-1")], &[held("3.0.0.1", "i-1")], &[], &[record("3.0.0.1")]);
        let repair = &plan.repairs[0];
        assert_eq!(repair.record, None);
        assert_eq!(repair.item, Some(Binding { updated_at: NOW, ..item("3.0.0.1", "i-1") }));
    }

    #[test]
    fn an_item_that_differs_only_in_its_timestamp_is_left_as_it_is() {
        let fresh = Binding { updated_at: NOW - 5, ..item("3.0.0.1", "i-1") };
        let plan = run(&[node("i-1")], &[held("3.0.0.1", "i-1")], &[fresh], &[record("3.0.0.1")]);
        assert!(plan.is_empty());
    }

    #[test]
    fn an_item_naming_another_association_or_not_allocated_is_rewritten() {
        let other_association = Binding { association_id: Some("eipassoc-old".into()), ..item("3.0.0.1", "i-1") };
        let not_allocated = Binding { allocated: false, ..item("3.0.0.1", "i-1") };
        for wrong in [other_association, not_allocated] {
            let plan = run(&[node("i-1")], &[held("3.0.0.1", "i-1")], &[wrong], &[record("3.0.0.1")]);
            assert_eq!(plan.repairs[0].item, Some(Binding { updated_at: NOW, ..item("3.0.0.1", "i-1") }), "{plan}");
        }
    }

    #[test]
    fn a_node_that_is_not_running_gives_back_address_record_and_item() {
        for state in ["stopping", "stopped", "shutting-down", "terminated"] {
            let instances = [node("i-1").in_state(state)];
            let plan = run(&instances, &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[record("3.0.0.1")]);
            let release = &plan.releases[0];
            assert_eq!(release.reason, ReleaseReason::NotRunning(state.into()));
            assert_eq!(release.association_id.as_deref(), Some("eipassoc-3.0.0.1"));
            assert_eq!(release.instance_id.as_deref(), Some("i-1"));
            assert_eq!(release.record_delete, Some(record("3.0.0.1")));
            let item = release.item.clone().unwrap();
            assert!(!item.allocated && item.instance_id.is_none() && item.association_id.is_none());
            assert_eq!(plan.pool_free_after, 1);
        }
    }

    #[test]
    fn an_address_held_by_a_vanished_instance_or_interface_is_released() {
        let dangling_eni =
            PoolAddress { instance_id: None, network_interface_id: Some("eni-x".into()), ..held("3.0.0.2", "x") };
        let plan = run(&[], &[held("3.0.0.1", "i-gone"), dangling_eni], &[], &[]);
        assert_eq!(
            released(&plan),
            [("3.0.0.1", ReleaseReason::InstanceGone), ("3.0.0.2", ReleaseReason::InstanceGone)]
        );
        assert_eq!(plan.releases[0].instance_id.as_deref(), Some("i-gone"));
        assert_eq!(plan.releases[1].instance_id, None);
    }

    #[test]
    fn an_instance_that_no_longer_matches_the_node_tags_gives_its_address_back() {
        let retagged = Instance { tags: [("role".to_string(), "web".to_string())].into(), ..node("i-1") };
        let other = Instance { state: "stopped".into(), ..node("i-2") };
        let plan = run(&[retagged, other], &[held("3.0.0.1", "i-1")], &[], &[]);
        assert_eq!(released(&plan), [("3.0.0.1", ReleaseReason::NoLongerMatches)]);
        assert!(plan.withheld.is_empty());
    }

    #[test]
    fn a_node_selector_that_matches_no_instance_of_the_vpc_withholds_its_no_longer_matches_releases() {
        let retagged = |id: &str| Instance { tags: [("role".to_string(), "web".to_string())].into(), ..node(id) };
        // A stopped node and a vanished holder still release: the guard is only
        // for the selector.
        let stopped = Instance { tags: BTreeMap::new(), ..node("i-3").in_state("stopped") };
        let outside_vpc = Instance { vpc_id: "vpc-2".into(), ..node("i-9") };
        let instances = [retagged("i-1"), retagged("i-2"), stopped, outside_vpc];
        let pool = [held("3.0.0.1", "i-1"), held("3.0.0.2", "i-2"), held("3.0.0.3", "i-3"), held("3.0.0.4", "i-gone")];
        let items = [item("3.0.0.1", "i-1"), item("3.0.0.2", "i-2")];
        let plan = run(&instances, &pool, &items, &[record("3.0.0.1")]);
        let withheld: Vec<(&str, ReleaseReason)> =
            plan.withheld.iter().map(|r| (r.public_ip.as_str(), r.reason.clone())).collect();
        assert_eq!(
            withheld,
            [("3.0.0.1", ReleaseReason::NoLongerMatches), ("3.0.0.2", ReleaseReason::NoLongerMatches)]
        );
        assert_eq!(
            released(&plan),
            [("3.0.0.3", ReleaseReason::NotRunning("stopped".into())), ("3.0.0.4", ReleaseReason::InstanceGone)]
        );
        assert_eq!(plan.pool_free_after, 2, "withheld addresses are not free");
        assert!(plan.to_string().contains("? i-1 -> 3.0.0.1 release withheld"), "{plan}");
    }

    #[test]
    fn a_node_holding_an_elastic_ip_from_outside_the_pool_on_its_primary_address_is_left_alone() {
        let theirs = |eni: Option<&str>, instance: Option<&str>, private_ip: Option<&str>| PoolAddress {
            association_id: Some("eipassoc-theirs".into()),
            network_interface_id: eni.map(str::to_owned),
            instance_id: instance.map(str::to_owned),
            private_ip: private_ip.map(str::to_owned),
            ..free("198.51.100.7")
        };
        let with_ip = Instance { private_ip: Some("10.0.0.5".into()), ..node("i-1") };
        let cases = [
            ("on the primary interface", theirs(Some("eni-i-1"), None, None), true),
            ("on the primary private address", theirs(Some("eni-i-1"), Some("i-1"), Some("10.0.0.5")), true),
            ("by instance id only", theirs(None, Some("i-1"), None), true),
            ("on a secondary private address", theirs(Some("eni-i-1"), Some("i-1"), Some("10.0.0.6")), false),
            ("on the secondary interface", theirs(Some("eni-i-1-b"), Some("i-1"), None), false),
            ("on another node", theirs(Some("eni-i-2"), None, None), false),
            ("not associated", PoolAddress { association_id: None, ..theirs(Some("eni-i-1"), None, None) }, false),
        ];
        for (case, address, left_alone) in cases {
            let p = plan(std::slice::from_ref(&with_ip), &[free("3.0.0.1")], &[address], &[], &[], &settings(), NOW);
            assert_eq!(p.nodes_left_alone.len(), usize::from(left_alone), "{case}: {p}");
            assert_eq!(p.binds.len(), usize::from(!left_alone), "{case}");
            assert!(p.unbound.is_empty(), "{case}: left alone is not waiting for the pool");
            if left_alone {
                assert!(
                    p.to_string().contains(". i-1 left alone: its primary private address holds 198.51.100.7"),
                    "{p}"
                );
            }
        }
    }

    #[test]
    fn item_writes_are_conditioned_on_the_instance_the_item_names_now() {
        // EC2 shows i-1 holding the address; the item says it is allocated to
        // i-2 (a restore, a hand association).
        let plan = run(
            &[node("i-1"), node("i-2")],
            &[held("3.0.0.1", "i-1"), free("3.0.0.2")],
            &[item("3.0.0.1", "i-2")],
            &[record("3.0.0.1")],
        );
        let repair = plan.repairs.iter().find(|r| r.public_ip == "3.0.0.1").expect("a repair");
        assert_eq!(repair.item.as_ref().and_then(|i| i.instance_id.as_deref()), Some("i-1"));
        assert_eq!(repair.item_owner.as_deref(), Some("i-2"));
        // A released address handed to a waiting node is claimed from its
        // former holder.
        let plan = run(
            &[node("i-1").in_state("terminated"), node("i-2")],
            &[held("3.0.0.1", "i-1")],
            &[item("3.0.0.1", "i-1")],
            &[],
        );
        assert_eq!(bound(&plan), [("i-2", "3.0.0.1", false)]);
        assert_eq!(plan.binds[0].item_owner.as_deref(), Some("i-1"));
        assert_eq!(plan.releases[0].item_owner.as_deref(), Some("i-1"));
        // An item that already names the node is no other owner.
        let plan = run(&[node("i-1")], &[free("3.0.0.1")], &[claim("3.0.0.1", "i-1")], &[]);
        assert_eq!((plan.binds[0].resumed, plan.binds[0].item_owner.clone()), (true, None));
    }

    #[test]
    fn a_released_address_goes_to_a_waiting_node_in_the_same_plan() {
        let instances = [node("i-1").in_state("terminated"), node("i-2")];
        let plan = run(&instances, &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[]);
        assert_eq!(released(&plan), [("3.0.0.1", ReleaseReason::NotRunning("terminated".into()))]);
        assert_eq!(bound(&plan), [("i-2", "3.0.0.1", false)]);
        assert_eq!(plan.pool_free_after, 0);
    }

    #[test]
    fn addresses_freed_by_the_plan_and_free_ones_are_handed_out_in_one_ascending_order() {
        let instances = [node("i-1"), node("i-2"), node("i-3"), node("i-4").in_state("stopped")];
        let pool = [held("3.0.0.1", "i-1"), held("3.0.0.3", "i-1"), free("3.0.0.2"), held("3.0.0.4", "i-4")];
        let plan = run(&instances, &pool, &[], &[]);
        assert_eq!(bound(&plan), [("i-2", "3.0.0.2", false), ("i-3", "3.0.0.3", false)]);
        assert_eq!(plan.pool_free_after, 1);
    }

    #[test]
    fn an_address_held_by_a_pending_instance_is_left_alone() {
        let instances = [node("i-1").in_state("pending")];
        let plan = run(&instances, &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[record("3.0.0.1")]);
        assert!(plan.is_empty());
        assert_eq!(plan.left_alone[0].why, "held by i-1, still pending");
        assert_eq!(plan.pool_free_after, 0);
    }

    #[test]
    fn an_address_held_outside_the_vpc_is_left_alone_with_its_record_and_item() {
        let outsider = Instance { vpc_id: "vpc-2".into(), ..node("i-1").in_state("stopped") };
        let plan =
            run(&[outsider, node("i-2")], &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[record("3.0.0.1")]);
        assert!(plan.releases.is_empty() && plan.binds.is_empty());
        assert_eq!(
            plan.left_alone,
            [LeftAlone { public_ip: "3.0.0.1".into(), why: "held by i-1 outside vpc-1".into() }]
        );
        assert_eq!(plan.unbound, ["i-2"]);
    }

    #[test]
    fn an_association_by_interface_only_is_traced_to_the_instance_that_owns_it() {
        let by_eni =
            PoolAddress { instance_id: None, network_interface_id: Some("eni-i-1-b".into()), ..held("3.0.0.1", "i-1") };
        let plan = run(&[node("i-1")], std::slice::from_ref(&by_eni), &[item("3.0.0.1", "i-1")], &[record("3.0.0.1")]);
        assert!(plan.is_empty(), "{plan}");
        let stopped = run(&[node("i-1").in_state("stopped")], &[by_eni], &[], &[]);
        assert_eq!(stopped.releases[0].instance_id.as_deref(), Some("i-1"));
    }

    #[test]
    fn a_claim_by_a_running_node_without_an_address_is_resumed() {
        let pool = [free("3.0.0.1"), free("3.0.0.2")];
        let plan = run(&[node("i-1")], &pool, &[claim("3.0.0.2", "i-1")], &[]);
        assert_eq!(bound(&plan), [("i-1", "3.0.0.2", true)]);
        assert!(plan.releases.is_empty());
        assert_eq!(plan.counts().resumed, 1);
    }

    #[test]
    fn a_node_claiming_two_free_addresses_resumes_the_lowest_and_releases_the_other_claim() {
        let pool = [free("3.0.0.1"), free("3.0.0.2")];
        let plan = run(&[node("i-1")], &pool, &[claim("3.0.0.2", "i-1"), claim("3.0.0.1", "i-1")], &[]);
        assert_eq!(bound(&plan), [("i-1", "3.0.0.1", true)]);
        assert_eq!(released(&plan), [("3.0.0.2", ReleaseReason::ItemStale)]);
    }

    #[test]
    fn a_claim_by_a_node_that_holds_another_address_is_released() {
        let pool = [held("3.0.0.1", "i-1"), free("3.0.0.2")];
        let items = [item("3.0.0.1", "i-1"), claim("3.0.0.2", "i-1")];
        let plan = run(&[node("i-1")], &pool, &items, &[record("3.0.0.1"), record("3.0.0.2")]);
        assert!(plan.binds.is_empty());
        let release = &plan.releases[0];
        assert_eq!((release.public_ip.as_str(), &release.reason), ("3.0.0.2", &ReleaseReason::ItemStale));
        assert_eq!(release.association_id, None);
        assert_eq!(release.record_delete, Some(record("3.0.0.2")));
        assert_eq!(plan.pool_free_after, 1);
    }

    #[test]
    fn a_stale_claim_on_a_free_address_is_released_and_the_address_handed_out_again() {
        let instances = [node("i-1").in_state("stopped"), node("i-2")];
        let plan = run(&instances, &[free("3.0.0.1")], &[claim("3.0.0.1", "i-1")], &[]);
        assert_eq!(released(&plan), [("3.0.0.1", ReleaseReason::ItemStale)]);
        assert_eq!(plan.releases[0].instance_id.as_deref(), Some("i-1"));
        assert_eq!(bound(&plan), [("i-2", "3.0.0.1", false)]);
    }

    #[test]
    fn a_node_holding_two_addresses_keeps_the_one_its_item_names() {
        let pool = [held("3.0.0.1", "i-1"), held("3.0.0.2", "i-1")];
        let plan = run(&[node("i-1")], &pool, &[item("3.0.0.2", "i-1")], &[record("3.0.0.2")]);
        assert_eq!(released(&plan), [("3.0.0.1", ReleaseReason::SecondAddress)]);
        assert_eq!(plan.keeps[0].public_ip, "3.0.0.2");
    }

    #[test]
    fn a_node_whose_items_name_several_of_its_addresses_keeps_the_lowest_of_those() {
        let pool = [held("3.0.0.1", "i-1"), held("3.0.0.2", "i-1"), held("3.0.0.3", "i-1")];
        let plan = run(&[node("i-1")], &pool, &[item("3.0.0.3", "i-1"), item("3.0.0.2", "i-1")], &[]);
        assert_eq!(
            released(&plan),
            [("3.0.0.1", ReleaseReason::SecondAddress), ("3.0.0.3", ReleaseReason::SecondAddress)]
        );
        assert_eq!(plan.repairs[0].public_ip, "3.0.0.2");
    }

    #[test]
    fn a_node_holding_two_addresses_without_an_item_keeps_the_lowest() {
        let pool = [held("3.0.0.10", "i-1"), held("3.0.0.9", "i-1")];
        let plan = run(&[node("i-1")], &pool, &[], &[]);
        assert_eq!(released(&plan), [("3.0.0.10", ReleaseReason::SecondAddress)]);
        assert_eq!(plan.repairs[0].public_ip, "3.0.0.9");
    }

    #[test]
    fn an_empty_pool_leaves_nodes_unbound_and_existing_bindings_untouched() {
        let instances = [node("i-1"), node("i-3"), node("i-2")];
        let plan = run(&instances, &[held("3.0.0.1", "i-1")], &[item("3.0.0.1", "i-1")], &[record("3.0.0.1")]);
        assert!(plan.is_empty());
        assert_eq!(plan.unbound, ["i-2", "i-3"]);
        assert_eq!(plan.keeps.len(), 1);
        assert_eq!(plan.pool_free_after, 0);
    }

    #[test]
    fn without_dns_no_record_is_read_or_written() {
        let settings = Settings { dns: None, ..settings() };
        let instances = [node("i-1"), node("i-2").in_state("stopped")];
        let records = [record("3.0.0.1"), record("3.0.0.2"), ARecord { values: vec![], ..record("3.0.0.3") }];
        let items = [Binding { dns_name: None, ..item("3.0.0.2", "i-2") }];
        let pool = [free("3.0.0.1"), held("3.0.0.2", "i-2"), free("3.0.0.3")];
        let plan = plan(&instances, &pool, &[], &items, &records, &settings, NOW);
        assert_eq!(plan.binds[0].dns_name, None);
        assert_eq!(plan.releases.len(), 1);
        assert_eq!(plan.releases[0].record_delete, None);
    }

    #[test]
    fn without_a_table_items_are_neither_read_nor_written() {
        let settings = Settings { table: false, ..settings() };
        let instances = [node("i-1"), node("i-2").in_state("stopped")];
        let pool = [free("3.0.0.1"), held("3.0.0.2", "i-2")];
        let plan = plan(&instances, &pool, &[], &[claim("3.0.0.1", "i-9")], &[record("3.0.0.2")], &settings, NOW);
        assert_eq!(bound(&plan), [("i-1", "3.0.0.1", false)]);
        assert_eq!(released(&plan), [("3.0.0.2", ReleaseReason::NotRunning("stopped".into()))]);
        assert_eq!(plan.releases[0].item, None);
        assert_eq!(plan.releases[0].record_delete, Some(record("3.0.0.2")));
    }

    #[test]
    fn records_and_items_of_other_addresses_are_never_touched() {
        let others = [record("9.9.9.9"), ARecord { name: format!("www.{SUFFIX}"), ..record("3.0.0.1") }];
        let associated = PoolAddress { association_id: Some("eipassoc-x".into()), ..free("9.9.9.9") };
        let plan = plan(&[], &[free("3.0.0.1")], &[associated], &[claim("9.9.9.9", "i-1")], &others, &settings(), NOW);
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn the_record_of_an_address_that_left_the_pool_or_the_account_is_collected_once_it_is_associated_nowhere() {
        let untagged_free = free("9.9.9.8");
        let untagged_held = PoolAddress { association_id: Some("eipassoc-x".into()), ..free("9.9.9.9") };
        let records = [
            record("9.9.9.7"),                                               // the address is gone from the account
            record("9.9.9.8"),                                               // out of the pool, free
            record("9.9.9.9"),                                               // out of the pool, still on something
            ARecord { values: vec!["9.9.9.6".into()], ..record("9.9.9.5") }, // not the job's naming
            ARecord { values: vec!["9.9.9.4".into(), "9.9.9.3".into()], ..record("9.9.9.4") },
        ];
        let plan = plan(&[], &[], &[untagged_free, untagged_held], &[], &records, &settings(), NOW);
        assert_eq!(plan.orphan_records, [record("9.9.9.7"), record("9.9.9.8")]);
        assert!(plan.to_string().contains("- 9-9-9-7.nodes.example.com A 9.9.9.7 deleted"), "{plan}");
        let no_dns = Settings { dns: None, ..settings() };
        assert!(super::plan(&[], &[], &[], &[], &records, &no_dns, NOW).orphan_records.is_empty());
    }

    #[test]
    fn a_record_left_behind_by_a_free_unclaimed_address_is_deleted() {
        let stray = ARecord { ttl: 300, ..record("3.0.0.1") };
        let plan = run(&[], &[free("3.0.0.1")], &[], std::slice::from_ref(&stray));
        assert_eq!(released(&plan), [("3.0.0.1", ReleaseReason::RecordLeft)]);
        assert_eq!((plan.releases[0].record_delete.clone(), plan.releases[0].item.clone()), (Some(stray), None));
        let bound_now = run(&[node("i-1")], &[free("3.0.0.1")], &[], &[record("3.0.0.1")]);
        assert!(bound_now.releases.is_empty(), "the bind's upsert already rewrites it");
    }

    #[test]
    fn the_display_reads_as_a_diff_of_the_bindings() {
        let instances = [
            node("i-1"),
            node("i-2"),
            node("i-3"),
            node("i-4").in_state("stopped"),
            node("i-5"),
            Instance { vpc_id: "vpc-2".into(), ..node("i-6") },
            node("i-7"),
        ];
        let pool = [
            held("3.0.0.1", "i-1"),
            held("3.0.0.2", "i-2"),
            free("3.0.0.3"),
            held("3.0.0.4", "i-4"),
            held("3.0.0.6", "i-6"),
        ];
        let items = [item("3.0.0.1", "i-1"), claim("3.0.0.3", "i-3"), item("3.0.0.4", "i-4")];
        let records = [record("3.0.0.1"), record("3.0.0.4")];
        let plan = run(&instances, &pool, &items, &records);
        let expected = "\
- i-4 -> 3.0.0.4 released (node is stopped)
+ i-3 <- 3.0.0.3 (3-0-0-3.nodes.example.com), resuming an earlier claim
+ i-5 <- 3.0.0.4 (3-0-0-4.nodes.example.com)
~ repair i-2 3.0.0.2: record, item
= i-1 3.0.0.1
? i-7 no free address in the pool
. 3.0.0.6 left alone: held by i-6 outside vpc-1
";
        assert_eq!(plan.to_string(), expected);
        let counts = plan.counts();
        assert_eq!((counts.binds, counts.resumed, counts.repairs, counts.releases, counts.unbound), (2, 1, 1, 1, 1));
        assert_eq!(plan.changes(), 4);
    }

    #[test]
    fn the_plan_serializes_for_the_report() {
        let plan = run(&[node("i-1").in_state("stopped")], &[held("3.0.0.1", "i-1")], &[], &[]);
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["releases"][0]["reason"], serde_json::json!({ "not_running": "stopped" }));
        assert_eq!(json["pool_free_after"], 1);
    }
}
