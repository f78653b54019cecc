//! Properties of the `eip` planner over random worlds, checked against a
//! simulation of EC2, Route 53 and DynamoDB written apart from the planner.

use std::collections::BTreeMap;

use kube_rtsync::jobs::eip::{ARecord, Binding, Dns, EipPlan, Instance, PoolAddress, RecordChange, Settings, plan};
use proptest::prelude::*;

const VPC: &str = "vpc-0000000000000001";
const SUFFIX: &str = "nodes.example.com";
const TTL: u64 = 60;
const NOW: u64 = 1_700_000_000;
const STATES: [&str; 8] =
    ["running", "running", "running", "pending", "stopping", "stopped", "shutting-down", "terminated"];
/// Chosen so that text order and numeric order disagree.
const IPS: [&str; 10] = [
    "3.0.0.9",
    "3.0.0.10",
    "3.0.0.100",
    "3.0.0.2",
    "9.0.0.1",
    "10.0.0.1",
    "3.0.1.1",
    "3.0.0.20",
    "3.0.0.3",
    "52.1.2.3",
];
/// Addresses outside the pool, whose items and records must survive every plan.
const OUTSIDE: [&str; 2] = ["203.0.113.5", "203.0.113.10"];
/// An address outside the pool on a node's primary interface: that node is left
/// alone.
const THEIRS: &str = "198.51.100.20";
/// An address no longer in the account whose record was left: it is collected.
const RELEASED_TO_AWS: &str = "198.51.100.30";

/// Small integers from which a world is built, so that proptest shrinks toward
/// simple worlds.
#[derive(Clone, Debug)]
struct Seed {
    pool: Vec<usize>,
    instances: Vec<(usize, usize, usize, usize)>,
    associations: Vec<(usize, usize, usize)>,
    items: Vec<(usize, usize, usize, bool)>,
    records: Vec<usize>,
    dns: bool,
    table: bool,
    bare_selector: bool,
    /// An Elastic IP from outside the pool on this instance's primary interface
    /// (rule 3).
    outside_on: Option<usize>,
}

fn seeds() -> impl Strategy<Value = Seed> {
    (
        proptest::sample::subsequence((0..IPS.len()).collect::<Vec<_>>(), 1..=8),
        prop::collection::vec((0..STATES.len(), 0..4usize, 0..4usize, 0..3usize), 0..=8),
        prop::collection::vec((0..7usize, 0..10usize, 0..2usize), 8),
        prop::collection::vec((0..4usize, 0..10usize, 0..3usize, any::<bool>()), 8),
        prop::collection::vec(0..4usize, 8),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.2, 0..8usize),
    )
        .prop_map(|(pool, instances, associations, items, records, dns, table, bare_selector, outside_on)| Seed {
            pool,
            instances,
            associations,
            items,
            records,
            dns,
            table,
            bare_selector,
            outside_on,
        })
}

#[derive(Clone, Debug)]
struct World {
    bare_selector: bool,
    instances: Vec<Instance>,
    pool: Vec<PoolAddress>,
    /// The account's addresses outside the pool: never written.
    outside: Vec<PoolAddress>,
    items: BTreeMap<String, Binding>,
    records: BTreeMap<String, ARecord>,
    settings: Settings,
    next_association: usize,
}

fn name_of(ip: &str) -> String {
    format!("{}.{SUFFIX}", ip.replace('.', "-"))
}

fn instance_id(k: usize) -> String {
    format!("i-{k}")
}

fn build(seed: &Seed) -> World {
    let instances: Vec<Instance> = seed
        .instances
        .iter()
        .enumerate()
        .map(|(k, &(state, vpc, role, enis))| Instance {
            id: instance_id(k),
            vpc_id: if vpc == 0 { "vpc-0000000000000002".into() } else { VPC.into() },
            state: STATES[state].into(),
            tags: match role {
                0 => BTreeMap::new(),
                1 => [("role".to_string(), "web".to_string())].into(),
                _ => [("role".to_string(), "edge".to_string())].into(),
            },
            eni_ids: (0..enis).map(|e| format!("eni-{k}-{e}")).collect(),
            ..Instance::default()
        })
        .collect();
    let mut pool = Vec::new();
    let mut items = BTreeMap::new();
    let mut records = BTreeMap::new();
    for (slot, ip) in seed.pool.iter().map(|&i| IPS[i]).enumerate() {
        let (kind, target, eni_pick) = seed.associations[slot];
        let known = instances.get(target % instances.len().max(1));
        let (instance, eni) = match (kind, known) {
            (2..=4, Some(i)) => (Some(i.id.clone()), i.eni_ids.first().cloned()),
            (5, Some(i)) if !i.eni_ids.is_empty() => (None, Some(i.eni_ids[eni_pick % i.eni_ids.len()].clone())),
            (2..=5, None) | (6, _) if target % 2 == 0 => (Some(format!("i-gone-{target}")), None),
            (2..=5, None) | (6, _) => (None, Some(format!("eni-gone-{target}"))),
            _ => (None, None),
        };
        let association = (instance.is_some() || eni.is_some()).then(|| format!("eipassoc-{slot}"));
        let address = PoolAddress {
            allocation_id: format!("eipalloc-{slot}"),
            public_ip: ip.into(),
            association_id: association.clone(),
            instance_id: instance,
            network_interface_id: eni,
            ..PoolAddress::default()
        };
        let (item_kind, claimant, item_association, item_dns) = seed.items[slot];
        if item_kind > 0 {
            let item = Binding {
                public_ip: ip.into(),
                allocation_id: address.allocation_id.clone(),
                instance_id: match claimant {
                    8 => Some("i-gone".into()),
                    9 => None,
                    _ => Some(instance_id(claimant % instances.len().max(1))),
                },
                association_id: match item_association {
                    0 => None,
                    1 => association,
                    _ => Some("eipassoc-old".into()),
                },
                dns_name: item_dns.then(|| name_of(ip)),
                allocated: item_kind > 1,
                updated_at: 1,
            };
            items.insert(ip.to_string(), item);
        }
        let right = ARecord { name: name_of(ip), ttl: TTL, values: vec![ip.into()] };
        match seed.records[slot] {
            1 => drop(records.insert(right.name.clone(), right)),
            2 => drop(records.insert(right.name.clone(), ARecord { ttl: 300, ..right })),
            3 => drop(records.insert(right.name.clone(), ARecord { values: vec!["198.51.100.1".into()], ..right })),
            _ => {}
        }
        pool.push(address);
    }
    // Outside the pool: associated with interfaces of other services (their
    // records and items stay), and one on an instance's primary interface.
    let mut outside: Vec<PoolAddress> = OUTSIDE
        .iter()
        .enumerate()
        .map(|(k, ip)| PoolAddress {
            allocation_id: format!("eipalloc-outside-{k}"),
            public_ip: ip.to_string(),
            association_id: Some(format!("eipassoc-outside-{k}")),
            network_interface_id: Some(format!("eni-elsewhere-{k}")),
            ..PoolAddress::default()
        })
        .collect();
    if let Some(eni) = seed.outside_on.and_then(|k| instances.get(k)).and_then(|i| i.eni_ids.first()) {
        outside.push(PoolAddress {
            allocation_id: "eipalloc-theirs".into(),
            public_ip: THEIRS.into(),
            association_id: Some("eipassoc-theirs".into()),
            network_interface_id: Some(eni.clone()),
            ..PoolAddress::default()
        });
    }
    // A record the job made for an address since released back to AWS.
    let gone = name_of(RELEASED_TO_AWS);
    records.insert(gone.clone(), ARecord { name: gone, ttl: TTL, values: vec![RELEASED_TO_AWS.into()] });
    for (k, ip) in OUTSIDE.iter().enumerate() {
        let claim = Binding {
            public_ip: ip.to_string(),
            allocation_id: format!("eipalloc-outside-{k}"),
            instance_id: Some(instance_id(k)),
            allocated: true,
            ..Binding::default()
        };
        items.insert(ip.to_string(), claim);
        records.insert(name_of(ip), ARecord { name: name_of(ip), ttl: 300, values: vec![ip.to_string()] });
    }
    let www = format!("www.{SUFFIX}");
    records.insert(www.clone(), ARecord { name: www, ttl: 300, values: vec![IPS[0].into()] });
    let selector = if seed.bare_selector { None } else { Some("edge".to_string()) };
    let settings = Settings {
        vpc_id: VPC.into(),
        nodes: kube_rtsync::shared::nodes::NodeRule::selector_only(
            selector.as_deref().map_or("role".to_owned(), |v| format!("role={v}")).parse().unwrap(),
        ),
        dns: seed.dns.then(|| Dns { suffix: SUFFIX.into(), ttl: TTL }),
        table: seed.table,
    };
    World { bare_selector: seed.bare_selector, instances, pool, outside, items, records, settings, next_association: 0 }
}

impl World {
    fn plan(&self) -> EipPlan {
        let items: Vec<Binding> = self.items.values().cloned().collect();
        let records: Vec<ARecord> = self.records.values().cloned().collect();
        plan(&self.instances, &self.pool, &self.outside, &items, &records, &self.settings, NOW)
    }

    fn selects(&self, instance: &Instance) -> bool {
        let tag = instance.tags.get("role");
        match self.bare_selector {
            false => tag.map(String::as_str) == Some("edge"),
            true => tag.is_some(),
        }
    }

    fn is_node(&self, instance: &Instance) -> bool {
        instance.vpc_id == VPC && instance.state == "running" && self.selects(instance)
    }

    /// Who an associated address is on: the named instance, else the one owning
    /// the interface.
    fn holder(&self, address: &PoolAddress) -> Option<&Instance> {
        address.association_id.as_ref()?;
        let by_id = address.instance_id.as_ref().and_then(|id| self.instances.iter().find(|i| &i.id == id));
        by_id.or_else(|| {
            let eni = address.network_interface_id.as_ref()?;
            self.instances.iter().find(|i| i.eni_ids.contains(eni))
        })
    }

    /// Addresses that are not ours to change: on an instance outside the VPC,
    /// or on one still pending.
    fn untouchable(&self, address: &PoolAddress) -> bool {
        self.holder(address).is_some_and(|i| i.vpc_id != VPC || i.state == "pending")
    }

    fn address(&mut self, allocation_id: &str, public_ip: &str) -> &mut PoolAddress {
        let address = self.pool.iter_mut().find(|a| a.allocation_id == allocation_id);
        let address = address.unwrap_or_else(|| panic!("{allocation_id} is not in the pool"));
        assert_eq!(address.public_ip, public_ip);
        address
    }

    fn delete_record(&mut self, record: &ARecord, ip: &str) {
        assert!(self.settings.dns.is_some(), "a record written without DNS");
        assert_eq!(record.name, name_of(ip), "a record not named after its pool address");
        assert_eq!(self.records.remove(&record.name).as_ref(), Some(record), "DELETE must repeat the record");
    }

    fn upsert_record(&mut self, ip: &str) {
        assert!(self.settings.dns.is_some(), "a record written without DNS");
        self.records.insert(name_of(ip), ARecord { name: name_of(ip), ttl: TTL, values: vec![ip.into()] });
    }

    fn put_item(&mut self, item: &Binding, ip: &str) {
        assert!(self.settings.table, "an item written without a table");
        assert_eq!(item.public_ip, ip);
        self.items.insert(ip.into(), item.clone());
    }

    fn claimable_by(&self, ip: &str, owners: &[Option<&String>]) -> bool {
        self.items.get(ip).is_none_or(|c| {
            !c.allocated
                || c.instance_id.is_none()
                || owners.iter().flatten().any(|o| c.instance_id.as_ref() == Some(*o))
        })
    }

    /// The phases of the real apply (src/jobs/eip/apply.rs), in its order, with
    /// DynamoDB's conditions and EC2's refusals checked: 1. disassociate; 2.
    /// released items (not for an address bound again) and claims; 3.
    /// associate; 4. records and items.
    fn apply(&mut self, plan: &EipPlan) {
        let rebound: Vec<&str> = plan.binds.iter().map(|b| b.public_ip.as_str()).collect();
        for release in &plan.releases {
            let address = self.address(&release.allocation_id, &release.public_ip);
            if let Some(association) = &release.association_id {
                assert_eq!(address.association_id.as_ref(), Some(association), "disassociating a stale association");
                address.association_id = None;
                address.instance_id = None;
                address.network_interface_id = None;
            }
        }
        for release in plan.releases.iter().filter(|r| !rebound.contains(&r.public_ip.as_str())) {
            if let Some(item) = &release.item {
                assert!(!item.allocated && item.instance_id.is_none() && item.association_id.is_none());
                let ok = self.claimable_by(&release.public_ip, &[release.item_owner.as_ref()]);
                assert!(
                    ok,
                    "the released item of {} is refused: {:?}",
                    release.public_ip,
                    self.items.get(&release.public_ip)
                );
                self.put_item(item, &release.public_ip);
            }
        }
        let table = self.settings.table;
        for bind in plan.binds.iter().filter(|b| table && !b.resumed) {
            let ok = self.claimable_by(&bind.public_ip, &[Some(&bind.instance_id), bind.item_owner.as_ref()]);
            assert!(
                ok,
                "the claim of {} for {} is refused: {:?}",
                bind.public_ip,
                bind.instance_id,
                self.items.get(&bind.public_ip)
            );
            let claim = Binding { association_id: None, ..self.bound_item(bind, None) };
            self.put_item(&claim, &bind.public_ip);
        }
        let mut associations = BTreeMap::new();
        for bind in &plan.binds {
            let instance = self.instances.iter().find(|i| i.id == bind.instance_id).expect("bind to a known instance");
            assert!(self.is_node(instance), "bound {} which is not a node", instance.id);
            assert_eq!(bind.network_interface_id.as_ref(), instance.eni_ids.first(), "not the primary interface");
            let theirs = self.outside.iter().any(|a| {
                a.network_interface_id.is_some() && a.network_interface_id.as_ref() == instance.eni_ids.first()
            });
            assert!(!theirs, "associating with {} takes its own Elastic IP off it", instance.id);
            self.next_association += 1;
            let association = format!("eipassoc-new-{}", self.next_association);
            let address = self.address(&bind.allocation_id, &bind.public_ip);
            assert!(address.association_id.is_none(), "AllowReassociation=false refuses {}", bind.public_ip);
            address.association_id = Some(association.clone());
            address.instance_id = Some(bind.instance_id.clone());
            address.network_interface_id = bind.network_interface_id.clone();
            associations.insert(bind.public_ip.clone(), association);
        }
        for release in plan.releases.iter().filter(|r| !rebound.contains(&r.public_ip.as_str())) {
            if let Some(record) = &release.record_delete {
                self.delete_record(record, &release.public_ip);
            }
        }
        for bind in &plan.binds {
            if self.settings.dns.is_some() {
                assert_eq!(bind.dns_name, Some(name_of(&bind.public_ip)));
                self.upsert_record(&bind.public_ip);
            }
            if self.settings.table {
                let item = self.bound_item(bind, associations.get(&bind.public_ip).cloned());
                assert!(
                    self.claimable_by(&bind.public_ip, &[Some(&bind.instance_id)]),
                    "the item of {} is refused",
                    bind.public_ip
                );
                self.put_item(&item, &bind.public_ip);
            }
        }
        for repair in &plan.repairs {
            let address = self.address(&repair.allocation_id, &repair.public_ip);
            assert_eq!(address.association_id, repair.association_id, "repairing an address that moved");
            match &repair.record {
                Some(RecordChange::Upsert(record)) => {
                    assert_eq!(record.name, name_of(&repair.public_ip));
                    self.upsert_record(&repair.public_ip);
                }
                Some(RecordChange::Delete(record)) => self.delete_record(record, &repair.public_ip),
                None => {}
            }
            if let Some(item) = &repair.item {
                let ok = self.claimable_by(&repair.public_ip, &[Some(&repair.instance_id), repair.item_owner.as_ref()]);
                assert!(ok, "the repair of {} is refused: {:?}", repair.public_ip, self.items.get(&repair.public_ip));
                self.put_item(item, &repair.public_ip);
            }
        }
        for record in &plan.orphan_records {
            assert!(self.settings.dns.is_some(), "a record deleted without DNS");
            assert_eq!(self.records.remove(&record.name).as_ref(), Some(record), "DELETE must repeat the record");
        }
    }

    fn bound_item(&self, bind: &kube_rtsync::jobs::eip::Bind, association_id: Option<String>) -> Binding {
        Binding {
            public_ip: bind.public_ip.clone(),
            allocation_id: bind.allocation_id.clone(),
            instance_id: Some(bind.instance_id.clone()),
            association_id,
            dns_name: bind.dns_name.clone(),
            allocated: true,
            updated_at: NOW,
        }
    }
}

fn touched(plan: &EipPlan) -> Vec<(&str, &str)> {
    let binds = plan.binds.iter().map(|b| (b.allocation_id.as_str(), b.public_ip.as_str()));
    let repairs = plan.repairs.iter().map(|r| (r.allocation_id.as_str(), r.public_ip.as_str()));
    let releases = plan.releases.iter().map(|r| (r.allocation_id.as_str(), r.public_ip.as_str()));
    binds.chain(repairs).chain(releases).collect()
}

proptest! {
    // Failures print their minimal case; nothing is written next to the
    // sources.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn applying_a_plan_leaves_one_address_per_node_and_replanning_finds_nothing_to_do(seed in seeds()) {
        let mut world = build(&seed);
        let before = world.clone();
        let plan = world.plan();
        world.apply(&plan);

        for (allocation_id, ip) in touched(&plan) {
            let address = before.pool.iter().find(|a| a.allocation_id == allocation_id).expect("touched outside the pool");
            prop_assert_eq!(&address.public_ip, ip);
            prop_assert!(!before.untouchable(address), "touched {} which is not ours", ip);
        }
        let pool_names: Vec<String> = before.pool.iter().map(|a| name_of(&a.public_ip)).collect();
        let collected = name_of(RELEASED_TO_AWS);
        for (name, record) in &before.records {
            if !pool_names.contains(name) && *name != collected {
                prop_assert_eq!(world.records.get(name), Some(record), "an unrelated record changed");
            }
        }
        prop_assert_eq!(world.records.contains_key(&collected), world.settings.dns.is_none(), "the record of an address gone from the account");
        for node in &plan.nodes_left_alone {
            let instance = world.instances.iter().find(|i| i.id == node.instance_id).unwrap();
            prop_assert!(world.outside.iter().any(|a| a.network_interface_id.as_ref() == instance.eni_ids.first()), "{} left alone for nothing", node.instance_id);
        }
        for ip in OUTSIDE {
            prop_assert_eq!(world.items.get(ip), before.items.get(ip), "an item outside the pool changed");
        }

        for instance in world.instances.iter().filter(|i| world.is_node(i)) {
            let held = world.pool.iter().filter(|a| world.holder(a).is_some_and(|h| h.id == instance.id)).count();
            let unbound = plan.unbound.contains(&instance.id);
            let alone = plan.nodes_left_alone.iter().any(|n| n.instance_id == instance.id);
            let expected = usize::from(!unbound && !alone);
            prop_assert_eq!(held, expected, "{} holds {} pool addresses\n{}", instance.id, held, plan);
        }
        // Rule 5: an address released in this run serves a waiting node in this
        // run.
        if !plan.unbound.is_empty() {
            prop_assert_eq!(plan.pool_free_after, 0, "a node waits while an address is free\n{}", plan);
        }
        for address in world.pool.iter().filter(|a| !world.untouchable(a)) {
            let ip = &address.public_ip;
            let record = world.records.get(&name_of(ip)).filter(|_| world.settings.dns.is_some());
            let item = world.items.get(ip).filter(|_| world.settings.table);
            match world.holder(address).filter(|h| world.is_node(h)) {
                Some(node) => {
                    let right = ARecord { name: name_of(ip), ttl: TTL, values: vec![ip.clone()] };
                    prop_assert!(world.settings.dns.is_none() || record == Some(&right), "{} has record {:?}", ip, record);
                    let want = Binding {
                        public_ip: ip.clone(),
                        allocation_id: address.allocation_id.clone(),
                        instance_id: Some(node.id.clone()),
                        association_id: address.association_id.clone(),
                        dns_name: world.settings.dns.as_ref().map(|_| name_of(ip)),
                        allocated: true,
                        updated_at: 0,
                    };
                    let item = item.map(|i| Binding { updated_at: 0, ..i.clone() });
                    prop_assert!(!world.settings.table || item.as_ref() == Some(&want), "{} has item {:?}", ip, item);
                }
                // Rule 5a: a selector that matches no instance of the VPC
                // withholds its "no longer matches" releases; the address stays
                // where it is, with its record and item.
                None if plan.withheld.iter().any(|r| &r.public_ip == ip) => {
                    let matches_any = world.instances.iter().any(|i| i.vpc_id == VPC && world.selects(i));
                    prop_assert!(!matches_any, "{} withheld while the selector matches an instance", ip);
                    let holder = world.holder(address).expect("a withheld release is of an address on an instance");
                    prop_assert!(holder.vpc_id == VPC && holder.state == "running", "{} withheld from {}", ip, holder.id);
                }
                None => {
                    prop_assert!(address.association_id.is_none(), "{} is still on a non-node", ip);
                    prop_assert_eq!(record, None, "{} is free but still named", ip);
                    prop_assert!(item.is_none_or(|i| !i.allocated), "{} is free but still allocated", ip);
                }
            }
        }
        let claimable = world
            .pool
            .iter()
            .filter(|a| a.association_id.is_none())
            .filter(|a| !world.settings.table || world.items.get(&a.public_ip).is_none_or(|item| !item.allocated))
            .count();
        prop_assert_eq!(claimable, plan.pool_free_after);

        let again = world.plan();
        prop_assert!(again.is_empty(), "first plan:\n{}\nsecond plan:\n{}", plan, again);
        prop_assert_eq!(&again.unbound, &plan.unbound);
    }

    #[test]
    fn planning_is_deterministic_whatever_the_input_order(seed in seeds()) {
        let world = build(&seed);
        let mut shuffled = world.clone();
        shuffled.instances.reverse();
        shuffled.pool.reverse();
        let items: Vec<Binding> = world.items.values().rev().cloned().collect();
        let records: Vec<ARecord> = world.records.values().rev().cloned().collect();
        shuffled.outside.reverse();
        let reversed =
            plan(&shuffled.instances, &shuffled.pool, &shuffled.outside, &items, &records, &world.settings, NOW);
        prop_assert_eq!(world.plan(), reversed);
    }

    /// The same worlds through the real observe and apply
    /// (src/jobs/eip/apply.rs) against the in-memory EC2, Route 53 and
    /// DynamoDB, which refuse what the services refuse: one reconcile makes
    /// every write it plans, leaves no free address unused while a node waits,
    /// and a second finds nothing to do.
    #[test]
    fn the_real_apply_reaches_the_fixed_point_in_one_reconcile(seed in seeds()) {
        let world = build(&seed);
        let fakes = Fakes::of(&world);
        let config = fakes.config(&world);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let report = runtime.block_on(fakes.reconcile(&config)).expect("observe never fails here");
        let failed: Vec<_> = report.writes.iter().filter(|w| !w.status.is_made()).collect();
        prop_assert!(failed.is_empty(), "writes failed: {:?}\n{}", failed, report.plan);

        // Traced as EC2 does: the instance, else the owner of the interface.
        let held = |id: &str| {
            let eni_ids = &world.instances.iter().find(|i| i.id == id).expect("an instance").eni_ids;
            let on = |a: &PoolAddress| match (&a.instance_id, &a.network_interface_id) {
                (Some(instance), _) => instance == id,
                (None, Some(eni)) => eni_ids.contains(eni),
                (None, None) => false,
            };
            fakes.ec2.addresses().iter().filter(|a| a.tags.contains_key("pool") && a.association_id.is_some() && on(a)).count()
        };
        for instance in world.instances.iter().filter(|i| world.is_node(i)) {
            let waiting = report.plan.unbound.contains(&instance.id)
                || report.plan.nodes_left_alone.iter().any(|n| n.instance_id == instance.id);
            prop_assert_eq!(held(&instance.id), usize::from(!waiting), "{}\n{}", instance.id, report.plan);
        }
        if !report.plan.unbound.is_empty() {
            let claimable = fakes
                .ec2
                .addresses()
                .into_iter()
                .filter(|a| a.tags.contains_key("pool") && a.association_id.is_none())
                .filter(|a| !world.settings.table || fakes.bindings.item(&a.public_ip).is_none_or(|i| !i.allocated))
                .count();
            prop_assert_eq!(claimable, 0, "a node waits while an address is free\n{}", report.plan);
        }
        let again = runtime.block_on(fakes.reconcile(&config)).expect("observe never fails here");
        prop_assert!(again.plan.is_empty(), "first:\n{}\nsecond:\n{}", report.plan, again.plan);
    }
}

/// A world loaded into the in-memory services.
struct Fakes {
    ec2: kube_rtsync::fake::ec2::FakeEc2,
    route53: kube_rtsync::fake::route53::FakeRoute53,
    bindings: kube_rtsync::fake::dynamodb::FakeBindings,
}

impl Fakes {
    fn of(world: &World) -> Fakes {
        let ec2 = kube_rtsync::fake::ec2::FakeEc2::new([]);
        for instance in &world.instances {
            ec2.insert_instance(instance.clone());
        }
        for address in &world.pool {
            let mut address = address.clone();
            address.tags.insert("pool".into(), "yes".into());
            ec2.insert_address(address);
        }
        for address in &world.outside {
            ec2.insert_address(address.clone());
        }
        let route53 = kube_rtsync::fake::route53::FakeRoute53::default();
        for record in world.records.values() {
            route53.insert(record.clone());
        }
        let bindings = kube_rtsync::fake::dynamodb::FakeBindings::default();
        for item in world.items.values() {
            bindings.insert(item.clone());
        }
        Fakes { ec2, route53, bindings }
    }

    fn config(&self, world: &World) -> kube_rtsync::jobs::eip::config::Config {
        let mut vars: BTreeMap<&str, String> = BTreeMap::from([
            ("VPC_ID", VPC.to_owned()),
            ("EIP_NODE_TAGS", if world.bare_selector { "role".to_owned() } else { "role=edge".to_owned() }),
            ("EIP_POOL_TAGS", "pool=yes".to_owned()),
        ]);
        if world.settings.dns.is_some() {
            vars.insert("DNS_ZONE_ID", "Z0123456789ABC".into());
            vars.insert("DNS_SUFFIX", SUFFIX.into());
            vars.insert("DNS_TTL", TTL.to_string());
        }
        if world.settings.table {
            vars.insert("BINDING_TABLE", "bindings".into());
        }
        kube_rtsync::jobs::eip::config::Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
    }

    async fn reconcile(
        &self,
        config: &kube_rtsync::jobs::eip::config::Config,
    ) -> Result<kube_rtsync::jobs::eip::report::Report, kube_rtsync::jobs::eip::Error> {
        use kube_rtsync::shared::config::WriteRate;
        let limiter = kube_rtsync::shared::limiter::WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
        let reconciler = kube_rtsync::jobs::eip::Reconciler {
            ec2: &self.ec2,
            route53: &self.route53,
            bindings: &self.bindings,
            config,
            limiter: &limiter,
            dns_limiter: &limiter,
            deadline: None,
        };
        reconciler.reconcile(vec![kube_rtsync::shared::event::Trigger::Schedule { event_id: "p".into() }], NOW).await
    }
}
