//! The eip job against real EC2, Route 53 and DynamoDB APIs: the moto
//! emulator in server mode, through the real SDK adapters.

use std::collections::BTreeMap;

use crate::support::emulator::Emulator;
use crate::support::seed::{self, EIP_SUFFIX as SUFFIX, EIP_TABLE as TABLE};
use kube_rtsync::aws::dynamodb::{AwsBindings, binding_from_item};
use kube_rtsync::aws::ec2::AwsEc2;
use kube_rtsync::aws::route53::AwsRoute53;
use kube_rtsync::jobs::eip::config::Config;
use kube_rtsync::jobs::eip::report::{Outcome, Report};
use kube_rtsync::jobs::eip::{Error, Problem, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::event::Trigger;
use kube_rtsync::shared::limiter::WriteLimiter;

struct World {
    emulator: Emulator,
    ec2: aws_sdk_ec2::Client,
    route53: aws_sdk_route53::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    vpc_id: String,
    subnet: String,
    zone_id: String,
    nodes: Vec<String>,
}

async fn world(nodes: usize, pool: usize) -> World {
    let emulator = Emulator::start();
    let (ec2, route53, dynamodb) = (emulator.client(), emulator.route53_client(), emulator.dynamodb_client());
    let v = seed::eip_vpc(&ec2, &route53, &dynamodb, 9, nodes, pool).await;
    World { emulator, ec2, route53, dynamodb, vpc_id: v.vpc_id, subnet: v.subnet, zone_id: v.zone_id, nodes: v.nodes }
}

impl World {
    async fn launch(&self) -> String {
        seed::edge_node(&self.ec2, &self.subnet).await
    }

    fn config(&self, dns_and_table: bool) -> Config {
        let mut vars: BTreeMap<&str, String> = [
            ("VPC_ID", self.vpc_id.clone()),
            ("EIP_NODE_TAGS", "role=edge".into()),
            ("EIP_POOL_TAGS", "pool=edge".into()),
        ]
        .into();
        if dns_and_table {
            vars.extend([
                ("DNS_ZONE_ID", self.zone_id.clone()),
                ("DNS_SUFFIX", SUFFIX.into()),
                ("BINDING_TABLE", TABLE.into()),
            ]);
        }
        Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
    }

    async fn run(&self, config: &Config) -> Result<Report, Error> {
        let ec2 = AwsEc2::new(self.ec2.clone());
        let route53 = AwsRoute53::new(self.route53.clone());
        let bindings = AwsBindings::new(self.dynamodb.clone());
        let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
        let reconciler = Reconciler {
            ec2: &ec2,
            route53: &route53,
            bindings: &bindings,
            config,
            limiter: &limiter,
            dns_limiter: &limiter,
            deadline: None,
        };
        let report = reconciler.reconcile(vec![Trigger::Manual { command: "sync".into() }], 1_800_000_000).await?;
        kube_rtsync::jobs::eip::outcome(report)
    }

    async fn held(&self) -> BTreeMap<String, String> {
        seed::held_addresses(&self.ec2).await
    }

    async fn records(&self) -> BTreeMap<String, String> {
        seed::a_records(&self.route53, &self.zone_id).await
    }

    async fn item(&self, ip: &str) -> Option<kube_rtsync::aws::dynamodb::Binding> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(TABLE)
            .key("PublicIp", aws_sdk_dynamodb::types::AttributeValue::S(ip.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item().and_then(binding_from_item)
    }

    async fn assert_bound(&self, nodes: &[String]) {
        let held = self.held().await;
        let records = self.records().await;
        for node in nodes {
            let ip = held.get(node).unwrap_or_else(|| panic!("{node} holds no pool address: {held:?}"));
            let name = format!("{}.{SUFFIX}", ip.replace('.', "-"));
            assert_eq!(records.get(&name), Some(ip), "{name}");
            let item = self.item(ip).await.unwrap();
            assert!(
                item.allocated && item.instance_id.as_deref() == Some(node.as_str()) && item.association_id.is_some()
            );
        }
        let ips: Vec<&String> = held.values().collect();
        let unique: std::collections::BTreeSet<&&String> = ips.iter().collect();
        assert_eq!(ips.len(), unique.len(), "an address on two nodes: {held:?}");
    }
}

#[tokio::test]
async fn nodes_are_bound_named_and_recorded_and_a_duplicate_changes_nothing() {
    crate::require_emulator!();
    let w = world(2, 3).await;
    let report = w.run(&w.config(true)).await.unwrap();
    assert_eq!(report.totals.bound, 2);
    w.assert_bound(&w.nodes).await;
    let again = w.run(&w.config(true)).await.unwrap();
    assert_eq!(again.outcome, Outcome::InSync);
    assert_eq!(again.totals.pool_free, 1);
}

#[tokio::test]
async fn a_deleted_record_and_item_are_repaired() {
    crate::require_emulator!();
    let w = world(2, 2).await;
    w.run(&w.config(true)).await.unwrap();
    let held = w.held().await;
    let (ip0, ip1) = (held[&w.nodes[0]].clone(), held[&w.nodes[1]].clone());
    let name = format!("{}.{SUFFIX}.", ip0.replace('.', "-"));
    let record = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name(name)
        .r#type(aws_sdk_route53::types::RrType::A)
        .ttl(60)
        .resource_records(aws_sdk_route53::types::ResourceRecord::builder().value(&ip0).build().unwrap())
        .build()
        .unwrap();
    let change = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Delete)
        .resource_record_set(record)
        .build()
        .unwrap();
    w.route53
        .change_resource_record_sets()
        .hosted_zone_id(&w.zone_id)
        .change_batch(aws_sdk_route53::types::ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
    w.dynamodb
        .delete_item()
        .table_name(TABLE)
        .key("PublicIp", aws_sdk_dynamodb::types::AttributeValue::S(ip1.clone()))
        .send()
        .await
        .unwrap();
    let report = w.run(&w.config(true)).await.unwrap();
    assert_eq!(report.totals.repaired, 2);
    w.assert_bound(&w.nodes).await;
    assert_eq!(w.held().await, held, "repairs associate nothing new");
}

#[tokio::test]
async fn a_terminated_node_releases_its_address_for_the_next_node() {
    crate::require_emulator!();
    let w = world(2, 2).await;
    w.run(&w.config(true)).await.unwrap();
    let freed = w.held().await[&w.nodes[0]].clone();
    w.ec2.terminate_instances().instance_ids(&w.nodes[0]).send().await.unwrap();
    let report = w.run(&w.config(true)).await.unwrap();
    assert_eq!(report.totals.released, 1);
    assert!(!w.held().await.contains_key(&w.nodes[0]));
    assert!(!w.records().await.values().any(|ip| ip == &freed));
    let item = w.item(&freed).await.unwrap();
    assert!(!item.allocated && item.instance_id.is_none());
    let next = w.launch().await;
    w.run(&w.config(true)).await.unwrap();
    assert_eq!(w.held().await[&next], freed, "the freed address is reused");
    w.assert_bound(&[w.nodes[1].clone(), next]).await;
}

#[tokio::test]
async fn an_exhausted_pool_fails_and_names_the_nodes_left_without() {
    crate::require_emulator!();
    let w = world(3, 2).await;
    let err = w.run(&w.config(true)).await.unwrap_err();
    let Error::Job(Problem::PoolExhausted(report)) = &err else { panic!("{err}") };
    assert_eq!(report.plan.unbound.len(), 1);
    assert!(err.to_string().contains(&report.plan.unbound[0]), "{err}");
    assert_eq!(w.held().await.len(), 2);
}

#[tokio::test]
async fn without_dns_and_table_addresses_are_still_bound() {
    crate::require_emulator!();
    let w = world(2, 2).await;
    w.run(&w.config(false)).await.unwrap();
    assert_eq!(w.held().await.len(), 2);
    assert!(w.records().await.is_empty());
    assert_eq!(w.run(&w.config(false)).await.unwrap().outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_bad_eip_variable_fails_init_naming_it() {
    crate::require_emulator!();
    let env = vec![
        ("_HANDLER", "eip".to_owned()),
        ("VPC_ID", "vpc-0123456789abcdef0".to_owned()),
        ("EIP_NODE_TAGS", "role=edge".to_owned()),
        ("EIP_POOL_TAGS", "pool=edge".to_owned()),
        ("DNS_ZONE_ID", "Z0123456789ABC".to_owned()),
    ];
    let log = crate::support::failed_init_log(std::path::Path::new(env!("CARGO_BIN_EXE_kube-rtsync")), "eip", &env);
    assert!(log.contains("DNS_SUFFIX") && log.contains("is not set, but DNS_ZONE_ID is"), "{log}");
}

#[tokio::test]
async fn an_exhausted_pool_recovers_in_the_first_reconcile_after_a_node_goes() {
    crate::require_emulator!();
    let w = world(3, 2).await;
    let err = w.run(&w.config(true)).await.unwrap_err();
    let Error::Job(Problem::PoolExhausted(report)) = &err else { panic!("{err}") };
    let waiting = report.plan.unbound[0].clone();
    let bound: Vec<String> = w.nodes.iter().filter(|n| **n != waiting).cloned().collect();
    let freed = w.held().await[&bound[0]].clone();
    w.ec2.terminate_instances().instance_ids(&bound[0]).send().await.unwrap();
    // DynamoDB's conditional write is real here: the claim must not be
    // refused by the released address's own item.
    let report = w.run(&w.config(true)).await.unwrap_or_else(|e| panic!("the pool did not recover: {e}"));
    assert_eq!((report.totals.bound, report.totals.nodes_without_address), (1, 0));
    assert_eq!(w.held().await.get(&waiting), Some(&freed));
    w.assert_bound(&[bound[1].clone(), waiting]).await;
    assert_eq!(w.run(&w.config(true)).await.unwrap().outcome, Outcome::InSync);
}

#[tokio::test]
async fn an_item_naming_another_instance_than_the_holder_is_repaired() {
    crate::require_emulator!();
    let w = world(2, 2).await;
    w.run(&w.config(true)).await.unwrap();
    let ip = w.held().await[&w.nodes[0]].clone();
    let mut item = w.item(&ip).await.unwrap();
    item.instance_id = Some(w.nodes[1].clone());
    w.dynamodb
        .put_item()
        .table_name(TABLE)
        .set_item(Some(kube_rtsync::aws::dynamodb::item_from_binding(&item)))
        .send()
        .await
        .unwrap();
    let report = w.run(&w.config(true)).await.unwrap_or_else(|e| panic!("the repair was refused: {e}"));
    assert_eq!(report.totals.repaired, 1);
    w.assert_bound(&w.nodes).await;
}

#[tokio::test]
async fn a_node_selector_that_matches_no_instance_withholds_the_releases() {
    crate::require_emulator!();
    let w = world(2, 2).await;
    w.run(&w.config(true)).await.unwrap();
    let before = w.held().await;
    let vars: BTreeMap<&str, String> = [
        ("VPC_ID", w.vpc_id.clone()),
        ("EIP_NODE_TAGS", "role=egde".into()),
        ("EIP_POOL_TAGS", "pool=edge".into()),
        ("DNS_ZONE_ID", w.zone_id.clone()),
        ("DNS_SUFFIX", SUFFIX.into()),
        ("BINDING_TABLE", TABLE.into()),
    ]
    .into();
    let typo = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let report = w.run(&typo).await.expect("withheld releases do not fail the invocation");
    assert_eq!((report.totals.withheld, report.totals.released), (2, 0));
    assert_eq!(w.held().await, before);
    w.assert_bound(&w.nodes).await;
}

#[tokio::test]
async fn a_bind_publishes_one_change_event_per_node_through_a_rule_on_the_bus() {
    crate::require_emulator!();
    let w = world(2, 3).await;
    let queue = crate::support::events::EventsQueue::create(&w.emulator, "eip-changes").await;
    let config = w.config(true);
    let report = w.run(&config).await.unwrap();
    let published = crate::support::events::publish(&w.emulator, "eip", &config, &report).await;
    assert_eq!((published.events, published.failed), (2, 0));
    let events = queue.receive();
    assert_eq!(events.len(), 2, "{events:#?}");
    let held = w.held().await;
    let mut nodes: Vec<String> = Vec::new();
    for event in &events {
        assert_eq!(event["detail-type"], "eip change");
        let detail = &event["detail"];
        let node = detail["to"].as_str().unwrap().to_owned();
        let ip = detail["resource"].as_str().unwrap();
        assert_eq!(held.get(&node).map(String::as_str), Some(ip), "{held:?}");
        let name = format!("{}.{SUFFIX}", ip.replace('.', "-"));
        assert_eq!(detail["change"], format!("+ {node} <- {ip} ({name})"));
        assert_eq!(detail["reason"], "running node without a pool address");
        assert_eq!(detail["from"], serde_json::Value::Null);
        assert_eq!(detail["vpcId"], w.vpc_id.as_str());
        nodes.push(node);
    }
    nodes.sort();
    let mut expected = w.nodes.clone();
    expected.sort();
    assert_eq!(nodes, expected);
}
