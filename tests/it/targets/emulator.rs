//! The targets job against real EC2 and ELBv2 APIs: the moto emulator in
//! server mode, through the real SDK adapters.

use std::collections::BTreeMap;

use crate::support::emulator::Emulator;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription, TargetTypeEnum};
use kube_rtsync::aws::ec2::AwsEc2;
use kube_rtsync::aws::elbv2::AwsElbv2;
use kube_rtsync::jobs::targets::config::Config;
use kube_rtsync::jobs::targets::report::{Outcome, Report};
use kube_rtsync::jobs::targets::{Error, Problem, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::event::Trigger;
use kube_rtsync::shared::limiter::WriteLimiter;

struct World {
    emulator: Emulator,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    vpc_id: String,
    other_vpc_id: String,
    /// node name (n1, n2, n3, bastion) -> instance id
    instances: BTreeMap<&'static str, String>,
    /// port -> target group ARN
    groups: BTreeMap<i32, String>,
}

fn node_tags() -> Vec<Tag> {
    vec![
        Tag::builder().key("kops.k8s.io/instancegroup").value("nodes").build(),
        Tag::builder().key("KubernetesCluster").value("k8s.example.com").build(),
    ]
}

async fn group(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    name: &str,
    vpc: &str,
    port: i32,
    kind: TargetTypeEnum,
) -> String {
    let out = elb
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Tcp)
        .port(port)
        .vpc_id(vpc)
        .target_type(kind)
        .send()
        .await
        .unwrap();
    out.target_groups()[0].target_group_arn().unwrap().to_owned()
}

async fn world() -> World {
    let emulator = Emulator::start();
    let (ec2, elb) = (emulator.client(), emulator.elbv2_client());
    let vpc = ec2.create_vpc().cidr_block("10.2.0.0/16").send().await.unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let other = ec2.create_vpc().cidr_block("10.3.0.0/16").send().await.unwrap();
    let other_vpc_id = other.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let subnet = ec2.create_subnet().vpc_id(&vpc_id).cidr_block("10.2.0.0/24").send().await.unwrap();
    let subnet = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned();
    let mut instances = BTreeMap::new();
    for (name, tags) in [("n1", node_tags()), ("n2", node_tags()), ("n3", node_tags()), ("bastion", vec![])] {
        let mut run =
            ec2.run_instances().image_id("ami-0abcdef1234567890").min_count(1).max_count(1).subnet_id(&subnet);
        if !tags.is_empty() {
            run = run.tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(tags)).build(),
            );
        }
        let out = run.send().await.unwrap();
        instances.insert(name, out.instances()[0].instance_id().unwrap().to_owned());
    }
    let mut groups = BTreeMap::new();
    for port in [30443, 30080] {
        let arn = group(&elb, &format!("nodes-{port}"), &vpc_id, port, TargetTypeEnum::Instance).await;
        let registered = ["n1", "n2"].iter().map(|n| TargetDescription::builder().id(&instances[n]).build());
        elb.register_targets().target_group_arn(&arn).set_targets(Some(registered.collect())).send().await.unwrap();
        groups.insert(port, arn);
    }
    // Someone registered the bastion by hand.
    let bastion = TargetDescription::builder().id(&instances["bastion"]).build();
    elb.register_targets().target_group_arn(&groups[&30443]).targets(bastion).send().await.unwrap();
    World { emulator, ec2, elb, vpc_id, other_vpc_id, instances, groups }
}

impl World {
    fn config(&self, arns: &[&str]) -> Config {
        let vars: BTreeMap<&str, String> = [
            ("VPC_ID", self.vpc_id.clone()),
            ("TARGET_GROUP_ARNS", arns.join(",")),
            ("TARGET_NODE_TAGS", "kops.k8s.io/instancegroup=nodes".to_owned()),
            ("KUBE_CLUSTER_NAME", "k8s.example.com".to_owned()),
        ]
        .into();
        Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
    }

    fn arns(&self) -> Vec<&str> {
        self.groups.values().map(String::as_str).collect()
    }

    async fn run(&self, config: &Config) -> Result<Report, Error> {
        let ec2 = AwsEc2::new(self.ec2.clone());
        let elbv2 = AwsElbv2::new(self.elb.clone());
        let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
        let reconciler = Reconciler { ec2: &ec2, elbv2: &elbv2, config, limiter: &limiter, deadline: None };
        let report = reconciler.reconcile(vec![Trigger::Manual { command: "sync".into() }]).await?;
        match report.outcome {
            Outcome::Incomplete => Err(Error::Incomplete(Box::new(report))),
            _ => Ok(report),
        }
    }

    /// The names of the instances registered in the group on `port`.
    async fn registered(&self, port: i32) -> Vec<&'static str> {
        let out = self.elb.describe_target_health().target_group_arn(&self.groups[&port]).send().await.unwrap();
        let ids: Vec<String> =
            out.target_health_descriptions().iter().filter_map(|d| d.target()?.id().map(str::to_owned)).collect();
        let mut names: Vec<&'static str> =
            self.instances.iter().filter(|(_, id)| ids.contains(id)).map(|(name, _)| *name).collect();
        names.sort();
        names
    }
}

#[tokio::test]
async fn the_groups_follow_the_nodes_and_foreign_targets_stay() {
    crate::require_emulator!();
    let w = world().await;
    let config = w.config(&w.arns());
    let report = w.run(&config).await.unwrap();
    assert_eq!(report.totals.registered, 2, "n3 in both groups");
    assert_eq!(w.registered(30443).await, vec!["bastion", "n1", "n2", "n3"]);
    assert_eq!(w.registered(30080).await, vec!["n1", "n2", "n3"]);
    assert_eq!(w.run(&config).await.unwrap().outcome, Outcome::InSync, "a duplicate run writes nothing");

    // A stopping node leaves every group (the emulator would keep it, unused).
    w.ec2.stop_instances().instance_ids(&w.instances["n1"]).send().await.unwrap();
    let report = w.run(&config).await.unwrap();
    assert_eq!(report.totals.deregistered, 2);
    assert_eq!(w.registered(30443).await, vec!["bastion", "n2", "n3"]);

    // A node that loses its selector tag leaves too; the bastion never does.
    w.ec2
        .create_tags()
        .resources(&w.instances["n2"])
        .tags(Tag::builder().key("kops.k8s.io/instancegroup").value("masters").build())
        .send()
        .await
        .unwrap();
    w.run(&config).await.unwrap();
    assert_eq!(w.registered(30443).await, vec!["bastion", "n3"]);
    assert_eq!(w.registered(30080).await, vec!["n3"]);

    // A started node comes back.
    w.ec2.start_instances().instance_ids(&w.instances["n1"]).send().await.unwrap();
    w.run(&config).await.unwrap();
    assert_eq!(w.registered(30080).await, vec!["n1", "n3"]);
}

#[tokio::test]
async fn wrong_groups_are_named_and_nothing_is_written() {
    crate::require_emulator!();
    let w = world().await;
    let ip = group(&w.elb, "ips", &w.vpc_id, 30001, TargetTypeEnum::Ip).await;
    let elsewhere = group(&w.elb, "elsewhere", &w.other_vpc_id, 30002, TargetTypeEnum::Instance).await;
    let unknown = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nope/0123456789abcdef";
    for (bad, needle) in
        [(ip.as_str(), "expected \"instance\""), (elsewhere.as_str(), "expected vpc-"), (unknown, "not found")]
    {
        let config = w.config(&[&w.groups[&30443], bad]);
        let err = w.run(&config).await.unwrap_err();
        assert!(matches!(err, Error::Job(Problem::InvalidTargetGroups(_))), "{err}");
        assert!(err.to_string().contains(bad) && err.to_string().contains(needle), "{err}");
        assert_eq!(w.registered(30443).await, vec!["bastion", "n1", "n2"], "nothing written");
    }
}

#[tokio::test]
async fn a_malformed_arn_fails_init_naming_the_variable() {
    crate::require_emulator!();
    let env = vec![
        ("_HANDLER", "targets".to_owned()),
        ("VPC_ID", "vpc-0123456789abcdef0".to_owned()),
        ("TARGET_GROUP_ARNS", "nodes-443".to_owned()),
        ("TARGET_NODE_TAGS", "role=node".to_owned()),
    ];
    let log = crate::support::failed_init_log(std::path::Path::new(env!("CARGO_BIN_EXE_kube-rtsync")), "targets", &env);
    assert!(log.contains("TARGET_GROUP_ARNS") && log.contains("is not a target group ARN"), "{log}");
}

#[tokio::test]
async fn elbv2_throttling_is_retried_and_counted() {
    crate::require_emulator!();
    use crate::support::proxy::{Behaviour, Proxy, Refusal};
    use kube_rtsync::aws::error::ThrottleCounter;
    let w = world().await;
    // ELBv2 throttles with HTTP 400 and the code `Throttling`, not 503.
    let refusal = Refusal { action: "RegisterTargets", times: 2, status: 400, code: "Throttling" };
    let proxy = Proxy::start(&w.emulator.endpoint(), Behaviour { refuse: Some(refusal), ..Behaviour::default() });
    // The production client: kube-rtsync's configuration loader (standard
    // retries), pointed at the proxy.
    let sdk = kube_rtsync::aws::sdk::config_loader(|_| None)
        .unwrap()
        .endpoint_url(&proxy.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("test", "test", None, None, "kube-rtsync-tests"))
        .load()
        .await;
    let throttled = ThrottleCounter::default();
    let elbv2 = AwsElbv2::new(kube_rtsync::aws::sdk::elbv2_client(&sdk, throttled.clone()));
    let ec2 = AwsEc2::new(w.ec2.clone());
    let config = w.config(&w.arns());
    let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler { ec2: &ec2, elbv2: &elbv2, config: &config, limiter: &limiter, deadline: None };
    let report = reconciler.reconcile(vec![Trigger::Manual { command: "sync".into() }]).await.unwrap();
    assert_eq!(report.outcome, Outcome::Synced, "{report:?}");
    // n3 joins both groups; the SDK retried the two refused attempts.
    assert_eq!(proxy.actions()["RegisterTargets"], 2 + 2);
    assert_eq!(throttled.count(), 2, "both throttled attempts are counted in ThrottledRetries");
    assert_eq!(w.registered(30443).await, vec!["bastion", "n1", "n2", "n3"]);
    assert_eq!(w.registered(30080).await, vec!["n1", "n2", "n3"]);
}

#[tokio::test]
async fn a_selector_that_matches_no_instance_deregisters_no_node() {
    crate::require_emulator!();
    let w = world().await;
    // A typo (`node` for `nodes`), with the cluster set: every registered
    // node of the cluster "no longer matches", and the guard holds them.
    let vars: BTreeMap<&str, String> = [
        ("VPC_ID", w.vpc_id.clone()),
        ("TARGET_GROUP_ARNS", w.arns().join(",")),
        ("TARGET_NODE_TAGS", "kops.k8s.io/instancegroup=node".to_owned()),
        ("KUBE_CLUSTER_NAME", "k8s.example.com".to_owned()),
    ]
    .into();
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let report = w.run(&config).await.unwrap();
    assert_eq!(report.outcome, Outcome::InSync, "{report:?}");
    assert_eq!((report.totals.nodes, report.totals.deregistered, report.totals.withheld), (0, 0, 4));
    assert_eq!(w.registered(30443).await, vec!["bastion", "n1", "n2"]);
    assert_eq!(w.registered(30080).await, vec!["n1", "n2"]);
}

#[tokio::test]
async fn a_fill_publishes_one_change_event_per_registration_through_a_rule_on_the_bus() {
    crate::require_emulator!();
    let w = world().await;
    let queue = crate::support::events::EventsQueue::create(&w.emulator, "targets-changes").await;
    let config = w.config(&w.arns());
    let report = w.run(&config).await.unwrap();
    let published = crate::support::events::publish(&w.emulator, "targets", &config, &report).await;
    assert_eq!((published.events, published.failed), (2, 0));
    let events = queue.receive();
    assert_eq!(events.len(), 2, "{events:#?}");
    let n3 = &w.instances["n3"];
    let mut groups: Vec<String> = Vec::new();
    for event in &events {
        assert_eq!(event["detail-type"], "targets change");
        let detail = &event["detail"];
        let group = detail["resource"].as_str().unwrap().to_owned();
        let port = if group == w.groups[&30443] { 30443 } else { 30080 };
        assert_eq!(
            *detail,
            serde_json::json!({
                "job": "targets",
                "vpcId": w.vpc_id,
                "resource": group,
                "change": format!("+ {n3}:{port} (running node)"),
                "from": format!("{n3}:{port} not registered"),
                "to": format!("{n3}:{port} registered"),
                "reason": "running node",
                "invocationId": "inv-1",
            })
        );
        assert_eq!(
            event["resources"],
            serde_json::json!([group, format!("arn:aws:ec2:us-east-1:123456789012:instance/{n3}")])
        );
        groups.push(group);
    }
    groups.sort();
    let mut expected: Vec<String> = w.groups.values().cloned().collect();
    expected.sort();
    assert_eq!(groups, expected);
}
