//! The eip job end to end against the in-memory EC2, Route 53 and
//! DynamoDB: binds, duplicates, releases, an empty pool, and a failure
//! injected after each step of a bind followed by a retry.

use std::collections::{BTreeMap, BTreeSet};

use kube_rtsync::aws::ec2::model::{Address, Instance};
use kube_rtsync::fake::dynamodb::FakeBindings;
use kube_rtsync::fake::ec2::{FakeEc2, Fault, Operation};
use kube_rtsync::fake::route53::FakeRoute53;
use kube_rtsync::jobs::eip::config::Config;
use kube_rtsync::jobs::eip::report::{Outcome, Report};
use kube_rtsync::jobs::eip::{Error, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::event::Trigger;
use kube_rtsync::shared::limiter::WriteLimiter;

const VPC: &str = "vpc-0a00000000000001";
const SUFFIX: &str = "nodes.example.com";
const NOW: u64 = 1_800_000_000;

struct World {
    ec2: FakeEc2,
    route53: FakeRoute53,
    bindings: FakeBindings,
}

fn node(id: &str) -> Instance {
    Instance {
        id: id.into(),
        vpc_id: VPC.into(),
        state: "running".into(),
        tags: [("role".to_owned(), "edge".to_owned())].into(),
        eni_ids: vec![format!("eni-{id}")],
        ..Instance::default()
    }
}

fn address(n: u8, pool: bool) -> Address {
    let tags = if pool { [("pool".to_owned(), "edge".to_owned())].into() } else { BTreeMap::new() };
    Address { allocation_id: format!("eipalloc-{n}"), public_ip: format!("3.0.0.{n}"), tags, ..Address::default() }
}

/// Three edge nodes and a web server; three pool addresses and one outside the pool.
fn world() -> World {
    let ec2 = FakeEc2::new([]);
    for id in ["i-1", "i-2", "i-3"] {
        ec2.insert_instance(node(id));
    }
    ec2.insert_instance(Instance { tags: BTreeMap::new(), ..node("i-web") });
    for n in 1..=3 {
        ec2.insert_address(address(n, true));
    }
    ec2.insert_address(address(9, false));
    World { ec2, route53: FakeRoute53::default(), bindings: FakeBindings::default() }
}

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<&str, &str> = [
        ("VPC_ID", VPC),
        ("EIP_NODE_TAGS", "role=edge"),
        ("EIP_POOL_TAGS", "pool=edge"),
        ("DNS_ZONE_ID", "Z0123456789ABC"),
        ("DNS_SUFFIX", SUFFIX),
        ("BINDING_TABLE", "bindings"),
    ]
    .into();
    vars.extend(extra.iter().copied());
    Config::from_lookup(|name| vars.get(name).map(|v| v.to_string())).unwrap()
}

impl World {
    async fn run(&self, config: &Config) -> Result<Report, Error> {
        let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
        let reconciler = Reconciler {
            ec2: &self.ec2,
            route53: &self.route53,
            bindings: &self.bindings,
            config,
            limiter: &limiter,
            deadline: None,
        };
        let report = reconciler.reconcile(vec![Trigger::Schedule { event_id: "test".into() }], NOW).await?;
        kube_rtsync::jobs::eip::outcome(report)
    }

    /// instance -> pool addresses it holds
    fn held(&self) -> BTreeMap<String, Vec<String>> {
        let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in self.ec2.addresses().into_iter().filter(|a| a.tags.contains_key("pool")) {
            if let Some(instance) = a.instance_id {
                held.entry(instance).or_default().push(a.public_ip);
            }
        }
        held
    }

    /// What must hold after any invocation, finished or not: no address on
    /// two nodes (EC2 cannot), no node with two pool addresses, and every
    /// record names an address that is associated.
    fn assert_safe(&self) {
        for (instance, ips) in self.held() {
            assert!(ips.len() <= 1, "{instance} holds {ips:?}");
        }
        let associated: BTreeSet<String> =
            self.ec2.addresses().into_iter().filter(|a| a.association_id.is_some()).map(|a| a.public_ip).collect();
        for record in self.route53.records() {
            assert!(associated.contains(&record.values[0]), "{} names a free address", record.name);
        }
    }

    /// Every edge node holds one pool address, with its record and item.
    fn assert_bound(&self, nodes: &[&str]) {
        self.assert_safe();
        let held = self.held();
        for node in nodes {
            let ips = held.get(*node).unwrap_or_else(|| panic!("{node} holds no address: {held:?}"));
            let ip = &ips[0];
            let name = format!("{}.{SUFFIX}", ip.replace('.', "-"));
            assert!(self.route53.records().iter().any(|r| r.name == name && r.values == vec![ip.clone()]), "{name}");
            let item = self.bindings.item(ip).unwrap_or_else(|| panic!("no item for {ip}"));
            assert!(item.allocated && item.instance_id.as_deref() == Some(*node) && item.association_id.is_some());
        }
    }
}

#[tokio::test]
async fn every_node_gets_one_address_a_name_and_an_item_and_a_duplicate_changes_nothing() {
    let w = world();
    let report = w.run(&config(&[])).await.unwrap();
    w.assert_bound(&["i-1", "i-2", "i-3"]);
    assert_eq!(report.totals.bound, 3);
    assert_eq!(w.route53.batches(), 1, "every record change of a reconcile in one batch");
    assert!(!w.held().contains_key("i-web"));
    assert!(
        w.ec2.addresses().iter().any(|a| a.public_ip == "3.0.0.9" && a.association_id.is_none()),
        "outside the pool"
    );
    let (puts, batches) = (w.bindings.puts(), w.route53.batches());
    let again = w.run(&config(&[])).await.unwrap();
    assert_eq!(again.outcome, Outcome::InSync);
    assert_eq!((w.bindings.puts(), w.route53.batches()), (puts, batches), "a duplicate writes nothing");
}

#[tokio::test]
async fn a_failure_after_each_step_then_a_retry_ends_consistent() {
    type Inject = fn(&World);
    let cases: [(&str, Inject); 4] = [
        ("claim", |w| w.bindings.fail("PutItem", "InternalServerError", 1)),
        ("associate", |w| w.ec2.inject(Fault::code("InternalError").on(Operation::AssociateAddress).times(1))),
        ("records", |w| w.route53.fail("ChangeResourceRecordSets", "PriorRequestNotComplete", 4)),
        ("items", |w| w.bindings.fail_after("PutItem", 3, "InternalServerError", 3)),
    ];
    for (step, inject) in cases {
        let w = world();
        inject(&w);
        let err = w.run(&config(&[])).await.expect_err(step);
        assert!(matches!(err, Error::Incomplete(_)), "{step}: {err}");
        w.assert_safe();
        w.run(&config(&[])).await.unwrap_or_else(|e| panic!("{step}: the retry failed: {e}"));
        w.assert_bound(&["i-1", "i-2", "i-3"]);
        assert_eq!(w.run(&config(&[])).await.unwrap().outcome, Outcome::InSync, "{step}");
    }
}

#[tokio::test]
async fn two_concurrent_invocations_never_double_book_an_address() {
    let w = world();
    let config = config(&[]);
    let (a, b) = tokio::join!(w.run(&config), w.run(&config));
    let _ = (a, b);
    w.assert_safe();
    w.run(&config).await.unwrap();
    w.assert_bound(&["i-1", "i-2", "i-3"]);
}

#[tokio::test]
async fn an_empty_pool_reports_the_unbound_nodes_and_fails() {
    let w = world();
    w.ec2.insert_instance(node("i-4"));
    let err = w.run(&config(&[])).await.unwrap_err();
    let Error::PoolExhausted(report) = &err else { panic!("{err}") };
    assert_eq!(report.plan.unbound, vec!["i-4"]);
    assert_eq!(report.totals.nodes_without_address, 1);
    assert!(err.to_string().contains("i-4"), "{err}");
    w.assert_bound(&["i-1", "i-2", "i-3"]);
}

#[tokio::test]
async fn stopped_gone_and_retagged_nodes_give_their_address_back() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    let ip_of = |w: &World, node: &str| w.held()[node][0].clone();
    let (ip1, ip2, ip3) = (ip_of(&w, "i-1"), ip_of(&w, "i-2"), ip_of(&w, "i-3"));
    w.ec2.edit_instance("i-1", |i| i.state = "stopped".into());
    w.ec2.edit_instance("i-2", |i| {
        i.tags.clear();
    });
    w.ec2.edit_instance("i-3", |i| i.state = "terminated".into());
    let report = w.run(&config(&[])).await.unwrap();
    assert_eq!(report.totals.released, 3);
    assert!(w.held().is_empty());
    assert!(w.route53.records().is_empty());
    for ip in [ip1, ip2, ip3] {
        let item = w.bindings.item(&ip).unwrap();
        assert!(!item.allocated && item.instance_id.is_none() && item.association_id.is_none(), "{item:?}");
    }
    // A freed address is reused by the next node.
    w.ec2.insert_instance(node("i-5"));
    w.run(&config(&[])).await.unwrap();
    w.assert_bound(&["i-5"]);
}

#[tokio::test]
async fn a_deleted_record_or_item_is_repaired() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    let ip = w.held()["i-2"][0].clone();
    w.route53.remove(&format!("{}.{SUFFIX}", ip.replace('.', "-")));
    w.bindings.remove(&w.held()["i-3"][0]);
    let report = w.run(&config(&[])).await.unwrap();
    assert_eq!(report.totals.repaired, 2);
    w.assert_bound(&["i-1", "i-2", "i-3"]);
}

#[tokio::test]
async fn without_dns_or_table_only_addresses_are_bound() {
    let w = world();
    let vars = [("DNS_ZONE_ID", ""), ("DNS_SUFFIX", ""), ("BINDING_TABLE", "")];
    w.run(&config(&vars)).await.unwrap();
    assert_eq!(w.held().len(), 3);
    assert!(w.route53.records().is_empty() && w.bindings.items().is_empty());
    assert_eq!(w.run(&config(&vars)).await.unwrap().outcome, Outcome::InSync);
}
