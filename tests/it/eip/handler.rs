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
use kube_rtsync::jobs::eip::{Error, Problem, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::event::Trigger;
use kube_rtsync::shared::limiter::WriteLimiter;
use kube_rtsync::shared::report::JobReport;

const VPC: &str = "vpc-0a00000000000001";
const SUFFIX: &str = "nodes.example.com";
const NOW: u64 = 1_800_000_000;

struct World {
    ec2: FakeEc2,
    route53: FakeRoute53,
    bindings: FakeBindings,
}

fn node(id: &str) -> Instance {
    Instance::new(id, VPC, "running").with_tags(&[("role", "edge")]).with_eni(format!("eni-{id}"))
}

fn address(n: u8, pool: bool) -> Address {
    let tags = if pool { [("pool".to_owned(), "edge".to_owned())].into() } else { BTreeMap::new() };
    Address { allocation_id: format!("eipalloc-{n}"), public_ip: format!("3.0.0.{n}"), tags, ..Address::default() }
}

/// Three edge nodes and a web server; three pool addresses and one outside the
/// pool.
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
    let base = [
        ("VPC_ID", VPC),
        ("EIP_NODE_TAGS", "role=edge"),
        ("EIP_POOL_TAGS", "pool=edge"),
        ("DNS_ZONE_ID", "Z0123456789ABC"),
        ("DNS_SUFFIX", SUFFIX),
        ("BINDING_TABLE", "bindings"),
    ];
    crate::support::config_of(&base, extra)
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
            dns_limiter: &limiter,
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
        // Route 53 still busy with an earlier change: the batch fails as a
        // whole (and is not split, which would only send more).
        ("records", |w| w.route53.fail("ChangeResourceRecordSets", "PriorRequestNotComplete", 1)),
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
    let Error::Job(Problem::PoolExhausted(report)) = &err else { panic!("{err}") };
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

#[tokio::test]
async fn an_exhausted_pool_recovers_in_the_first_reconcile_after_a_node_goes() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    w.ec2.insert_instance(node("i-4"));
    let err = w.run(&config(&[])).await.unwrap_err();
    assert!(matches!(err, Error::Job(Problem::PoolExhausted(_))), "{err}");
    let freed = w.held()["i-2"][0].clone();
    w.ec2.edit_instance("i-2", |i| i.state = "terminated".into());
    let report = w.run(&config(&[])).await.unwrap_or_else(|e| panic!("the freed address did not reach i-4: {e}"));
    assert_eq!((report.totals.bound, report.totals.nodes_without_address), (1, 0));
    assert_eq!(w.held()["i-4"], vec![freed.clone()], "i-4 holds the address i-2 gave back");
    w.assert_bound(&["i-1", "i-3", "i-4"]);
    assert_eq!(w.bindings.item(&freed).unwrap().instance_id.as_deref(), Some("i-4"));
    assert_eq!(w.run(&config(&[])).await.unwrap().outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_node_whose_primary_address_holds_an_elastic_ip_from_outside_the_pool_is_left_alone() {
    let w = world();
    // i-1's own Elastic IP, from outside the pool, on its primary interface.
    w.ec2.insert_address(Address {
        association_id: Some("eipassoc-own".into()),
        instance_id: Some("i-1".into()),
        network_interface_id: Some("eni-i-1".into()),
        ..address(9, false)
    });
    let report = w.run(&config(&[])).await.unwrap();
    let own = w.ec2.addresses().into_iter().find(|a| a.public_ip == "3.0.0.9").unwrap();
    assert_eq!(own.instance_id.as_deref(), Some("i-1"), "the node's own address was taken off it");
    assert!(!w.held().contains_key("i-1"), "{:?}", w.held());
    w.assert_bound(&["i-2", "i-3"]);
    assert_eq!(report.totals.nodes_left_alone, 1);
    assert!(report.plan.nodes_left_alone[0].why.contains("3.0.0.9"), "{:?}", report.plan.nodes_left_alone);
    assert_eq!(report.totals.pool_free, 1, "the address i-1 did not take stays free");
}

#[tokio::test]
async fn an_item_naming_another_instance_than_the_holder_is_repaired() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    let ip = w.held()["i-1"][0].clone();
    // A point-in-time restore of the table: the item names i-2.
    let mut item = w.bindings.item(&ip).unwrap();
    item.instance_id = Some("i-2".into());
    w.bindings.insert(item);
    let report = w.run(&config(&[])).await.unwrap_or_else(|e| panic!("the repair was refused: {e}"));
    assert_eq!(report.totals.repaired, 1);
    w.assert_bound(&["i-1", "i-2", "i-3"]);
    assert_eq!(w.run(&config(&[])).await.unwrap().outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_node_selector_that_matches_no_instance_withholds_the_releases_and_says_so() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    let before = w.held();
    let typo = config(&[("EIP_NODE_TAGS", "role=egde")]);
    let report = w.run(&typo).await.expect("withheld releases do not fail the invocation: no retry can help");
    assert_eq!(w.held(), before, "a selector typo stripped the nodes");
    assert_eq!((report.totals.withheld, report.totals.released), (3, 0));
    let record = kube_rtsync::jobs::eip::report::emf_record("KubeRtsync", &report, &Default::default());
    assert_eq!(record["ChangesWithheld"], 3, "{record}");
    assert!(report.render(false).contains("Withheld: 3 releases"), "{}", report.render(false));
    // A node that stops still gives its address back.
    w.ec2.edit_instance("i-1", |i| i.state = "stopped".into());
    let report = w.run(&typo).await.unwrap();
    assert_eq!((report.totals.withheld, report.totals.released), (2, 1));
    assert!(!w.held().contains_key("i-1"));
}

#[tokio::test]
async fn hundreds_of_records_go_in_batches_within_route_53_s_limits() {
    let w = World { ec2: FakeEc2::new([]), route53: FakeRoute53::default(), bindings: FakeBindings::default() };
    let nodes: Vec<String> = (0..600).map(|n| format!("i-{n:04}")).collect();
    for (n, id) in nodes.iter().enumerate() {
        w.ec2.insert_instance(node(id));
        let ip = format!("3.0.{}.{}", n / 250, n % 250 + 1);
        let tags = [("pool".to_owned(), "edge".to_owned())].into();
        w.ec2.insert_address(Address {
            allocation_id: format!("eipalloc-{n}"),
            public_ip: ip,
            tags,
            ..Address::default()
        });
    }
    w.run(&config(&[])).await.unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = nodes.iter().map(String::as_str).collect();
    w.assert_bound(&ids);
    // 600 UPSERTs count 1,200 ResourceRecord elements: two requests (500
    // and 100), and none refused (a refused batch is retried change by
    // change, which would make 601).
    assert_eq!(w.route53.batches(), 2);
    assert_eq!(w.route53.records().len(), 600);
}

#[tokio::test(start_paused = true)]
async fn route_53_throttling_slows_route_53_s_pace_and_not_ec2_s() {
    let w = world();
    w.route53.fail("ChangeResourceRecordSets", "Throttling", 1);
    let ec2_limiter = WriteLimiter::new(WriteRate { per_second: 4.0, burst: 20 });
    let dns_limiter = WriteLimiter::new(WriteRate { per_second: 5.0, burst: 5 });
    let config = config(&[]);
    let reconciler = Reconciler {
        ec2: &w.ec2,
        route53: &w.route53,
        bindings: &w.bindings,
        config: &config,
        limiter: &ec2_limiter,
        dns_limiter: &dns_limiter,
        deadline: None,
    };
    let report = reconciler.reconcile(vec![Trigger::Schedule { event_id: "test".into() }], NOW).await.unwrap();
    assert!(report.totals.failed > 0, "the throttled batch is reported");
    assert_eq!(ec2_limiter.pace().await, 4.0, "EC2's pace heard Route 53's throttling");
    assert!(dns_limiter.pace().await < 5.0, "Route 53's pace did not");
}

#[tokio::test]
async fn the_plan_and_the_report_read_as_the_golden_files_say() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    // i-2 goes, i-4 and i-5 come: one takes i-2's address, the other waits.
    w.ec2.edit_instance("i-2", |i| i.state = "terminated".into());
    w.ec2.insert_instance(node("i-4"));
    w.ec2.insert_instance(node("i-5"));
    let Err(Error::Job(Problem::PoolExhausted(dry))) = w.run(&config(&[("DRY_RUN", "true")])).await else {
        panic!("exhausted")
    };
    crate::support::golden::assert_golden("eip-plan", &dry.render(false));
    let Err(Error::Job(Problem::PoolExhausted(report))) = w.run(&config(&[])).await else { panic!("exhausted") };
    crate::support::golden::assert_golden("eip-sync", &report.render(false));
}

#[tokio::test]
async fn the_dry_run_lists_the_same_writes_as_the_run() {
    let w = world();
    w.run(&config(&[])).await.unwrap();
    w.ec2.edit_instance("i-2", |i| i.state = "terminated".into());
    w.ec2.insert_instance(node("i-4"));
    w.route53.remove(&format!("3-0-0-1.{SUFFIX}"));
    let rows = |report: &Report| {
        let mut rows: Vec<(String, String)> =
            report.writes.iter().map(|r| (r.resource.clone(), r.change.clone())).collect();
        rows.sort();
        rows
    };
    let planned = w.run(&config(&[("DRY_RUN", "true")])).await.unwrap();
    let made = w.run(&config(&[])).await.unwrap();
    assert!(!rows(&made).is_empty());
    assert_eq!(rows(&planned), rows(&made));
}

#[tokio::test]
async fn a_refused_record_batch_is_tried_change_by_change_so_the_good_changes_go_through() {
    let w = world();
    // Route 53 refuses the first request (the batch of three UPSERTs) as if
    // one change were bad; the changes then go one by one.
    w.route53.fail("ChangeResourceRecordSets", "InvalidChangeBatch", 1);
    let report = w.run(&config(&[])).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.route53.batches(), 4, "the batch, then its three changes one by one");
    w.assert_bound(&["i-1", "i-2", "i-3"]);
    assert_eq!(report.totals.failed, 0);
    // A throttled batch is not split: more requests would not help it.
    let w = world();
    w.route53.fail("ChangeResourceRecordSets", "Throttling", 1);
    assert!(w.run(&config(&[])).await.is_err());
    assert_eq!(w.route53.batches(), 1);
}

#[tokio::test]
async fn a_leaving_node_loses_its_record_at_once_keeps_its_address_and_item_and_releases_when_it_stops() {
    let world = world();
    let config = config(&[]);
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    let first = world.run(&config).await.unwrap();
    let published = crate::support::publish("eip", &config, Some(&first), &bus).await;
    assert_eq!((published.events, published.failed), (3, 0), "three binds");
    assert_eq!(bus.entries()[0].detail_type, "eip change");
    assert_eq!(
        bus.entries()[0].resources,
        vec![
            "arn:aws:ec2:us-east-1:123456789012:elastic-ip/eipalloc-1".to_string(),
            "arn:aws:ec2:us-east-1:123456789012:instance/i-1".into()
        ]
    );
    assert_eq!(
        bus.details()[0],
        serde_json::json!({
            "job": "eip",
            "vpcId": VPC,
            "resource": "3.0.0.1",
            "change": "+ i-1 <- 3.0.0.1 (3-0-0-1.nodes.example.com)",
            "from": null,
            "to": "i-1",
            "reason": "running node without a pool address",
            "invocationId": "inv-1",
        })
    );

    world.ec2.warn_spot_interruption("i-1");
    let report = world.run(&config).await.unwrap();
    assert_eq!(world.held().get("i-1"), Some(&vec!["3.0.0.1".to_string()]), "the address stays until it stops");
    let names: Vec<String> = world.route53.records().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["3-0-0-2.nodes.example.com", "3-0-0-3.nodes.example.com"]);
    let item = world.bindings.items().into_iter().find(|i| i.public_ip == "3.0.0.1").unwrap();
    assert_eq!((item.allocated, item.instance_id.as_deref()), (true, Some("i-1")));
    let published = crate::support::publish("eip", &config, Some(&report), &bus).await;
    assert_eq!(published.events, 1);
    let detail = &bus.details()[3];
    assert_eq!(detail["change"], "~ 3.0.0.1 record deleted: i-1 is leaving: Spot interruption warning");
    assert_eq!((detail["from"].as_str(), detail["to"].as_str()), (Some("3-0-0-1.nodes.example.com"), None));

    // The runs after it agree and do nothing more; once it stops, the address
    // goes back to the pool.
    assert_eq!(world.run(&config).await.unwrap().outcome, Outcome::InSync);
    world.ec2.edit_instance("i-1", |i| i.state = "stopped".into());
    let report = world.run(&config).await.unwrap();
    assert_eq!(report.totals.released, 1);
    assert_eq!(world.held().get("i-1"), None);
}

#[tokio::test]
async fn changes_whose_records_share_a_batch_are_published_each_and_only_when_the_batch_went_through() {
    let world = world();
    let config = config(&[]);
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    // The three binds' records go in one batch, which Route 53 refuses as busy:
    // the binds are not whole.
    world.route53.fail("ChangeResourceRecordSets", "PriorRequestNotComplete", 1);
    let err = world.run(&config).await.expect_err("the record batch failed");
    let Error::Incomplete(report) = err else { panic!("{err}") };
    let published = crate::support::publish("eip", &config, Some(&*report), &bus).await;
    assert_eq!(published.events, 0, "no bind is published before its record is written: {:?}", bus.details());
    assert_eq!(report.totals.bound, 0);
    // The retry writes the records (the repairs): one event per node.
    let repaired = world.run(&config).await.unwrap();
    assert_eq!(crate::support::publish("eip", &config, Some(&repaired), &bus).await.events, 3);

    // Two nodes warned at once: their two record deletions share a batch, and
    // each is published.
    world.ec2.warn_spot_interruption("i-1");
    world.ec2.warn_spot_interruption("i-2");
    let report = world.run(&config).await.unwrap();
    let published = crate::support::publish("eip", &config, Some(&report), &bus).await;
    assert_eq!(published.events, 2);
    let last: Vec<String> = bus.details()[3..].iter().map(|d| d["change"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        last,
        [
            "~ 3.0.0.1 record deleted: i-1 is leaving: Spot interruption warning",
            "~ 3.0.0.2 record deleted: i-2 is leaving: Spot interruption warning"
        ]
    );
}

/// Route 53 where another invocation deletes `name` right after this one read
/// the records.
struct DeletedMeanwhile<'a> {
    inner: &'a FakeRoute53,
    name: String,
}

impl kube_rtsync::aws::route53::Route53 for DeletedMeanwhile<'_> {
    async fn a_records(
        &self,
        zone_id: &str,
        suffix: &str,
    ) -> Result<Vec<kube_rtsync::aws::route53::ARecord>, kube_rtsync::aws::error::AwsError> {
        let records = self.inner.a_records(zone_id, suffix).await;
        self.inner.remove(&self.name);
        records
    }

    async fn change(
        &self,
        zone_id: &str,
        changes: &[kube_rtsync::aws::route53::RecordChange],
    ) -> Result<(), kube_rtsync::aws::error::AwsError> {
        self.inner.change(zone_id, changes).await
    }
}

#[tokio::test]
async fn a_leaving_node_s_record_that_another_run_deleted_first_is_deleted_as_far_as_this_run_is_concerned() {
    let world = world();
    let config = config(&[]);
    world.run(&config).await.unwrap();
    for id in ["i-1", "i-2"] {
        world.ec2.warn_spot_interruption(id);
    }
    let route53 = DeletedMeanwhile { inner: &world.route53, name: "3-0-0-1.nodes.example.com".into() };
    let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler {
        ec2: &world.ec2,
        route53: &route53,
        bindings: &world.bindings,
        config: &config,
        limiter: &limiter,
        dns_limiter: &limiter,
        deadline: None,
    };
    let report = reconciler.reconcile(vec![Trigger::Schedule { event_id: "test".into() }], NOW).await.unwrap();
    let report = kube_rtsync::jobs::eip::outcome(report).expect("a record already gone is what the delete was for");
    assert_eq!(report.totals.repaired, 2);
    let names: Vec<String> = world.route53.records().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["3-0-0-3.nodes.example.com"]);
}
