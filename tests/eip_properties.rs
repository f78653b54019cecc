//! Properties of the `eip` planner over random worlds, checked against a simulation of EC2, Route 53 and DynamoDB
//! written apart from the planner.

use std::collections::BTreeMap;

use kube_rtsync::jobs::eip::{ARecord, Binding, Dns, EipPlan, Instance, PoolAddress, RecordChange, Settings, plan};
use proptest::prelude::*;

const VPC: &str = "vpc-1";
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

/// Small integers from which a world is built, so that proptest shrinks toward simple worlds.
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
    )
        .prop_map(|(pool, instances, associations, items, records, dns, table, bare_selector)| Seed {
            pool,
            instances,
            associations,
            items,
            records,
            dns,
            table,
            bare_selector,
        })
}

#[derive(Clone, Debug)]
struct World {
    bare_selector: bool,
    instances: Vec<Instance>,
    pool: Vec<PoolAddress>,
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
            vpc_id: if vpc == 0 { "vpc-2".into() } else { VPC.into() },
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
        node_selector: selector.as_deref().map_or("role".to_owned(), |v| format!("role={v}")).parse().unwrap(),
        dns: seed.dns.then(|| Dns { suffix: SUFFIX.into(), ttl: TTL }),
        table: seed.table,
    };
    World { bare_selector: seed.bare_selector, instances, pool, items, records, settings, next_association: 0 }
}

impl World {
    fn plan(&self) -> EipPlan {
        let items: Vec<Binding> = self.items.values().cloned().collect();
        let records: Vec<ARecord> = self.records.values().cloned().collect();
        plan(&self.instances, &self.pool, &items, &records, &self.settings, NOW)
    }

    fn is_node(&self, instance: &Instance) -> bool {
        let tag = instance.tags.get("role");
        let matches = match self.bare_selector {
            false => tag.map(String::as_str) == Some("edge"),
            true => tag.is_some(),
        };
        instance.vpc_id == VPC && instance.state == "running" && matches
    }

    /// Who an associated address is on: the named instance, else the one owning the interface.
    fn holder(&self, address: &PoolAddress) -> Option<&Instance> {
        address.association_id.as_ref()?;
        let by_id = address.instance_id.as_ref().and_then(|id| self.instances.iter().find(|i| &i.id == id));
        by_id.or_else(|| {
            let eni = address.network_interface_id.as_ref()?;
            self.instances.iter().find(|i| i.eni_ids.contains(eni))
        })
    }

    /// Addresses that are not ours to change: on an instance outside the VPC, or on one still pending.
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

    /// Releases, then binds, then repairs, as the host applies them.
    fn apply(&mut self, plan: &EipPlan) {
        for release in &plan.releases {
            let address = self.address(&release.allocation_id, &release.public_ip);
            if let Some(association) = &release.association_id {
                assert_eq!(address.association_id.as_ref(), Some(association), "disassociating a stale association");
                address.association_id = None;
                address.instance_id = None;
                address.network_interface_id = None;
            }
            if let Some(record) = &release.record_delete {
                self.delete_record(record, &release.public_ip);
            }
            if let Some(item) = &release.item {
                assert!(!item.allocated && item.instance_id.is_none() && item.association_id.is_none());
                self.put_item(item, &release.public_ip);
            }
        }
        for bind in &plan.binds {
            let instance = self.instances.iter().find(|i| i.id == bind.instance_id).expect("bind to a known instance");
            assert!(self.is_node(instance), "bound {} which is not a node", instance.id);
            assert_eq!(bind.network_interface_id.as_ref(), instance.eni_ids.first(), "not the primary interface");
            if self.settings.table {
                let claim = self.items.get(&bind.public_ip);
                let claimable = claim.is_none_or(|c| !c.allocated || c.instance_id.as_ref() == Some(&bind.instance_id));
                assert!(claimable, "claimed {} which is allocated to another", bind.public_ip);
            }
            self.next_association += 1;
            let association = format!("eipassoc-new-{}", self.next_association);
            let address = self.address(&bind.allocation_id, &bind.public_ip);
            assert!(address.association_id.is_none(), "AllowReassociation=false refuses {}", bind.public_ip);
            address.association_id = Some(association.clone());
            address.instance_id = Some(bind.instance_id.clone());
            address.network_interface_id = bind.network_interface_id.clone();
            if self.settings.dns.is_some() {
                assert_eq!(bind.dns_name, Some(name_of(&bind.public_ip)));
                self.upsert_record(&bind.public_ip);
            }
            if self.settings.table {
                let item = Binding {
                    public_ip: bind.public_ip.clone(),
                    allocation_id: bind.allocation_id.clone(),
                    instance_id: Some(bind.instance_id.clone()),
                    association_id: Some(association),
                    dns_name: bind.dns_name.clone(),
                    allocated: true,
                    updated_at: NOW,
                };
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
                self.put_item(item, &repair.public_ip);
            }
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
    #![proptest_config(ProptestConfig::with_cases(2000))]

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
        for (name, record) in &before.records {
            if !pool_names.contains(name) {
                prop_assert_eq!(world.records.get(name), Some(record), "an unrelated record changed");
            }
        }
        for ip in OUTSIDE {
            prop_assert_eq!(world.items.get(ip), before.items.get(ip), "an item outside the pool changed");
        }

        for instance in world.instances.iter().filter(|i| world.is_node(i)) {
            let held = world.pool.iter().filter(|a| world.holder(a).is_some_and(|h| h.id == instance.id)).count();
            let unbound = plan.unbound.contains(&instance.id);
            prop_assert_eq!(held, usize::from(!unbound), "{} holds {} pool addresses\n{}", instance.id, held, plan);
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
        let reversed = plan(&shuffled.instances, &shuffled.pool, &items, &records, &world.settings, NOW);
        prop_assert_eq!(world.plan(), reversed);
    }
}
