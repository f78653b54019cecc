//! The targets job end to end against the in-memory EC2 and ELBv2.

use kube_rtsync::aws::ec2::model::Instance;
use kube_rtsync::fake::ec2::FakeEc2;
use kube_rtsync::fake::elbv2::FakeElbv2;
use kube_rtsync::jobs::targets::config::Config;
use kube_rtsync::jobs::targets::model::TargetGroup;
use kube_rtsync::jobs::targets::report::{Outcome, Report};
use kube_rtsync::jobs::targets::{Error, Problem, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::job::handle_event;
use kube_rtsync::shared::limiter::WriteLimiter;

const VPC: &str = "vpc-0a00000000000001";
const TG443: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nodes-443/0000000000000443";
const TG80: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nodes-80/0000000000000080";

fn group(arn: &str, port: u16) -> TargetGroup {
    TargetGroup {
        arn: arn.into(),
        name: arn.split('/').nth(1).map(str::to_owned),
        target_type: "instance".into(),
        vpc_id: Some(VPC.into()),
        port: Some(port),
        protocol: Some("TCP".into()),
    }
}

fn node(id: &str, state: &str) -> Instance {
    Instance::new(id, VPC, state)
        .with_tags(&[("kops.k8s.io/instancegroup", "nodes"), ("KubernetesCluster", "k8s.example.com")])
}

/// Two groups; nodes i-01 and i-02 running and registered in both; i-03
/// running and registered nowhere; a bastion (not a node) registered in
/// the 443 group by hand.
fn world() -> (FakeEc2, FakeElbv2) {
    let ec2 = FakeEc2::new([]);
    for i in [node("i-01", "running"), node("i-02", "running"), node("i-03", "running")] {
        ec2.insert_instance(i);
    }
    ec2.insert_instance(Instance::new("i-0bastion", VPC, "running"));
    let elb = FakeElbv2::new([group(TG443, 30443), group(TG80, 30080)]);
    for arn in [TG443, TG80] {
        for id in ["i-01", "i-02"] {
            elb.seed(arn, id, None, "healthy");
        }
    }
    elb.seed(TG443, "i-0bastion", Some(22), "healthy");
    (ec2, elb)
}

fn config(extra: &[(&str, &str)]) -> Config {
    let arns = format!("{TG443},{TG80}");
    let base = [
        ("VPC_ID", VPC),
        ("TARGET_GROUP_ARNS", arns.as_str()),
        ("TARGET_NODE_TAGS", "kops.k8s.io/instancegroup=nodes"),
        ("KUBE_CLUSTER_NAME", "k8s.example.com"),
    ];
    crate::support::config_of(&base, extra)
}

async fn run(ec2: &FakeEc2, elb: &FakeElbv2, config: &Config) -> Result<Report, Error> {
    run_on(ec2, elb, config, crate::support::SCHEDULED).await
}

async fn run_on(ec2: &FakeEc2, elb: &FakeElbv2, config: &Config, event: &str) -> Result<Report, Error> {
    let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler { ec2, elbv2: elb, config, limiter: &limiter, deadline: None };
    handle_event(&reconciler, &crate::support::event(event)).await
}

fn ids(elb: &FakeElbv2, arn: &str) -> Vec<String> {
    elb.targets(arn).into_iter().map(|(id, port)| format!("{id}:{}", port.unwrap_or(0))).collect()
}

#[tokio::test]
async fn a_new_node_is_registered_in_every_group_at_its_port_in_one_call_each() {
    let (ec2, elb) = world();
    let report = run(&ec2, &elb, &config(&[])).await.unwrap();
    assert_eq!(ids(&elb, TG443), vec!["i-01:30443", "i-02:30443", "i-03:30443", "i-0bastion:22"]);
    assert_eq!(ids(&elb, TG80), vec!["i-01:30080", "i-02:30080", "i-03:30080"]);
    assert_eq!((report.totals.registered, report.totals.nodes, report.totals.foreign), (2, 3, 1));
    let calls = elb.calls();
    assert_eq!((calls.describe_groups, calls.describe_health, calls.register, calls.deregister), (1, 2, 2, 0));
    // Again: nothing to do, only describes.
    let again = run(&ec2, &elb, &config(&[])).await.unwrap();
    assert_eq!(again.outcome, Outcome::InSync);
    assert_eq!(elb.calls().register, 2);
}

#[tokio::test]
async fn a_stopping_node_leaves_every_group_and_a_gone_one_too() {
    let (ec2, elb) = world();
    ec2.edit_instance("i-01", |i| i.state = "stopping".into());
    elb.seed(TG80, "i-0gone", None, "unhealthy");
    let report = run(&ec2, &elb, &config(&[])).await.unwrap();
    assert_eq!(ids(&elb, TG443), vec!["i-02:30443", "i-03:30443", "i-0bastion:22"]);
    assert_eq!(ids(&elb, TG80), vec!["i-02:30080", "i-03:30080"]);
    assert_eq!(report.totals.deregistered, 3);
}

#[tokio::test]
async fn a_cluster_node_that_loses_its_selector_tag_is_deregistered_but_a_foreign_instance_never_is() {
    let (ec2, elb) = world();
    ec2.edit_instance("i-02", |i| {
        i.tags.insert("kops.k8s.io/instancegroup".into(), "masters".into());
    });
    run(&ec2, &elb, &config(&[])).await.unwrap();
    assert!(!ids(&elb, TG443).iter().any(|t| t.starts_with("i-02")));
    assert!(ids(&elb, TG443).contains(&"i-0bastion:22".to_owned()), "someone else's target stays");
    // Without KUBE_CLUSTER_NAME, an instance that no longer matches is not ours
    // to remove.
    let (ec2, elb) = world();
    ec2.edit_instance("i-02", |i| {
        i.tags.insert("kops.k8s.io/instancegroup".into(), "masters".into());
    });
    let arns = format!("{TG443},{TG80}");
    let no_cluster: Config = crate::support::config_of(
        &[("VPC_ID", VPC), ("TARGET_GROUP_ARNS", &arns), ("TARGET_NODE_TAGS", "kops.k8s.io/instancegroup=nodes")],
        &[],
    );
    run(&ec2, &elb, &no_cluster).await.unwrap();
    assert!(ids(&elb, TG443).iter().any(|t| t.starts_with("i-02")));
}

#[tokio::test]
async fn an_ip_group_or_a_group_of_another_vpc_is_an_error_before_any_write() {
    for (bad, needle) in [
        (TargetGroup { target_type: "ip".into(), ..group(TG80, 30080) }, "expected \"instance\""),
        (
            TargetGroup { vpc_id: Some("vpc-0b00000000000002".into()), ..group(TG80, 30080) },
            "expected vpc-0a00000000000001",
        ),
    ] {
        let (ec2, _) = world();
        let elb = FakeElbv2::new([group(TG443, 30443), bad]);
        let err = run(&ec2, &elb, &config(&[])).await.unwrap_err();
        assert!(matches!(err, Error::Job(Problem::InvalidTargetGroups(_))), "{err}");
        assert!(err.to_string().contains(TG80) && err.to_string().contains(needle), "{err}");
        assert_eq!(elb.calls().register + elb.calls().deregister, 0);
    }
}

#[tokio::test]
async fn an_unknown_arn_is_named_in_the_error() {
    let (ec2, _) = world();
    let elb = FakeElbv2::new([group(TG443, 30443)]);
    let err = run(&ec2, &elb, &config(&[])).await.unwrap_err();
    assert!(err.to_string().contains(&format!("target group {TG80}: not found")), "{err}");
    assert_eq!(elb.calls().register, 0);
}

#[tokio::test]
async fn one_group_failing_does_not_stop_the_other_and_the_retry_finishes() {
    let (ec2, elb) = world();
    elb.fail("RegisterTargets", Some(TG80), "Throttling", 1);
    let Err(Error::Incomplete(report)) = run(&ec2, &elb, &config(&[])).await else { panic!("expected incomplete") };
    assert_eq!((report.totals.groups_failed, report.totals.registered), (1, 1));
    assert!(ids(&elb, TG443).contains(&"i-03:30443".to_owned()));
    assert!(!ids(&elb, TG80).contains(&"i-03:30080".to_owned()));
    run(&ec2, &elb, &config(&[])).await.unwrap();
    assert!(ids(&elb, TG80).contains(&"i-03:30080".to_owned()));
}

/// The role may be scoped per target group: a group that is throttled or
/// denied stops that group's writes only, whichever group comes first.
#[tokio::test]
async fn a_stopping_error_in_the_first_group_does_not_stop_the_next_groups_writes() {
    let (ec2, elb) = world();
    ec2.edit_instance("i-01", |i| i.state = "stopped".into());
    elb.fail("RegisterTargets", Some(TG443), "AccessDenied", 1);
    let Err(Error::Incomplete(report)) = run(&ec2, &elb, &config(&[])).await else { panic!("expected incomplete") };
    assert_eq!(ids(&elb, TG80), vec!["i-02:30080".to_owned(), "i-03:30080".to_owned()]);
    assert_eq!(ids(&elb, TG443), vec!["i-01:30443".to_owned(), "i-02:30443".to_owned(), "i-0bastion:22".to_owned()]);
    assert_eq!((report.totals.groups_failed, report.totals.failed, report.totals.not_started), (1, 1, 1));
    assert_eq!((report.totals.registered, report.totals.deregistered), (1, 1));
}

/// A refused registration is that target's problem: the group's
/// deregistrations (a stopped node draining) still go out.
#[tokio::test]
async fn a_refused_registration_does_not_withhold_the_groups_deregistrations() {
    let (ec2, elb) = world();
    ec2.edit_instance("i-01", |i| i.state = "stopped".into());
    elb.refuse("i-03");
    let Err(Error::Incomplete(report)) = run(&ec2, &elb, &config(&[])).await else { panic!("expected incomplete") };
    assert_eq!(ids(&elb, TG443), vec!["i-02:30443".to_owned(), "i-0bastion:22".to_owned()]);
    assert_eq!(ids(&elb, TG80), vec!["i-02:30080".to_owned()]);
    assert_eq!((report.totals.failed, report.totals.not_started, report.totals.deregistered), (2, 0, 2));
}

#[tokio::test]
async fn a_refused_target_does_not_block_the_rest_of_its_batch() {
    let (ec2, elb) = world();
    ec2.insert_instance(node("i-04", "running"));
    elb.refuse("i-03");
    let Err(Error::Incomplete(report)) = run(&ec2, &elb, &config(&[])).await else { panic!("expected incomplete") };
    assert!(ids(&elb, TG443).contains(&"i-04:30443".to_owned()));
    assert!(!ids(&elb, TG443).contains(&"i-03:30443".to_owned()));
    assert_eq!(report.totals.failed, 2, "one batch per group failed (for i-03)");
}

#[tokio::test]
async fn a_deregistration_that_finds_the_target_gone_is_success() {
    let (ec2, elb) = world();
    ec2.edit_instance("i-01", |i| i.state = "terminated".into());
    elb.fail("DeregisterTargets", None, "InvalidTarget", 2);
    let report = run(&ec2, &elb, &config(&[])).await.unwrap();
    assert_eq!(report.outcome, Outcome::Synced);
}

#[tokio::test]
async fn a_dry_run_plans_and_writes_nothing() {
    let (ec2, elb) = world();
    ec2.edit_instance("i-01", |i| i.state = "stopped".into());
    let report = run(&ec2, &elb, &config(&[("DRY_RUN", "true")])).await.unwrap();
    assert_eq!(report.outcome, Outcome::DryRun);
    assert_eq!((report.totals.registered, report.totals.deregistered), (2, 2));
    assert_eq!(elb.calls().register + elb.calls().deregister, 0);
}

#[tokio::test]
async fn the_plan_and_the_report_read_as_the_golden_files_say() {
    use kube_rtsync::shared::report::JobReport;
    let (ec2, elb) = world();
    ec2.edit_instance("i-02", |i| i.state = "stopped".into());
    let dry = run(&ec2, &elb, &config(&[("DRY_RUN", "true")])).await.unwrap();
    crate::support::golden::assert_golden("targets-plan", &dry.render(false));
    let report = run(&ec2, &elb, &config(&[])).await.unwrap();
    crate::support::golden::assert_golden("targets-sync", &report.render(false));
}

#[tokio::test]
async fn a_spot_warning_deregisters_the_node_in_that_run_and_later_runs_do_not_register_it_again() {
    let (ec2, elb) = world();
    ec2.warn_spot_interruption("i-01");
    let report = run_on(&ec2, &elb, &config(&[]), crate::support::SPOT_INTERRUPTION).await.unwrap();
    assert_eq!(ids(&elb, TG443), vec!["i-02:30443", "i-03:30443", "i-0bastion:22"]);
    assert_eq!(ids(&elb, TG80), vec!["i-02:30080", "i-03:30080"]);
    assert_eq!((report.totals.deregistered, report.totals.registered), (2, 2));
    let plan = report.plan.as_ref().unwrap().to_string();
    assert!(plan.contains("- i-01 (leaving: Spot interruption warning)"), "{plan}");
    // ELBv2 keeps a deregistered target draining for the deregistration delay.
    elb.seed(TG443, "i-01", None, "draining");
    elb.seed(TG80, "i-01", None, "draining");
    let registers = elb.calls().register;
    let again = run(&ec2, &elb, &config(&[])).await.unwrap();
    assert_eq!(again.outcome, Outcome::InSync, "{}", again.plan.as_ref().unwrap());
    assert_eq!(elb.calls().register, registers, "no RegisterTargets for the leaving node");
}

#[tokio::test]
async fn a_scheduled_stop_deregisters_the_node_and_a_warning_for_an_instance_ec2_does_not_mark_changes_nothing() {
    let (ec2, elb) = world();
    run(&ec2, &elb, &config(&[])).await.unwrap();
    // The sample warning names i-0b7f3c2a9d4e5f601, which EC2 does not show as
    // leaving: the run trusts EC2.
    let report = run_on(&ec2, &elb, &config(&[]), crate::support::SPOT_INTERRUPTION).await.unwrap();
    assert_eq!(report.outcome, Outcome::InSync);
    // A completed stop event is no reason to go; a pending one is.
    ec2.schedule_event("i-02", "instance-stop", Some("2026-12-09T00:00:00Z"), true);
    assert_eq!(run(&ec2, &elb, &config(&[])).await.unwrap().outcome, Outcome::InSync);
    ec2.schedule_event("i-02", "instance-stop", Some("2026-12-09T00:00:00Z"), false);
    let report = run(&ec2, &elb, &config(&[])).await.unwrap();
    assert_eq!(report.totals.deregistered, 2);
    assert_eq!(ids(&elb, TG80), vec!["i-01:30080", "i-03:30080"]);
}

#[tokio::test]
async fn a_fill_publishes_one_change_event_per_registration_with_the_documented_detail() {
    let (ec2, elb) = world();
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    let config = config(&[]);
    let report = run(&ec2, &elb, &config).await.unwrap();
    let published = crate::support::publish("targets", &config, Some(&report), &bus).await;
    assert_eq!((published.events, published.failed, bus.calls()), (2, 0, 1));
    let entries = bus.entries();
    assert_eq!(entries[0].source, "kube-rtsync");
    assert_eq!(entries[0].detail_type, "targets change");
    assert_eq!(entries[0].bus, "default");
    assert_eq!(
        entries[0].resources,
        vec![TG443.to_string(), "arn:aws:ec2:us-east-1:123456789012:instance/i-03".into()]
    );
    assert_eq!(
        bus.details()[0],
        serde_json::json!({
            "job": "targets",
            "vpcId": VPC,
            "resource": TG443,
            "change": "+ i-03:30443 (running node)",
            "from": "i-03:30443 not registered",
            "to": "i-03:30443 registered",
            "reason": "running node",
            "invocationId": "inv-1",
        })
    );
    assert_eq!(bus.details()[1]["resource"], TG80);
    // Nothing changed: nothing published.
    let again = run(&ec2, &elb, &config).await.unwrap();
    assert_eq!(crate::support::publish("targets", &config, Some(&again), &bus).await.events, 0);
    assert_eq!(bus.calls(), 1);
}

#[tokio::test]
async fn a_refused_publish_leaves_the_writes_and_the_outcome_and_is_counted() {
    for code in ["ThrottlingException", "AccessDeniedException"] {
        let (ec2, elb) = world();
        let bus = kube_rtsync::fake::events::FakeEventBridge::default();
        bus.fail(code, 10);
        let config = config(&[]);
        let report = run(&ec2, &elb, &config).await.unwrap();
        let published = crate::support::publish("targets", &config, Some(&report), &bus).await;
        assert_eq!((published.events, published.failed), (0, 2), "{code}");
        assert_eq!(report.outcome, Outcome::Synced, "{code}");
        assert_eq!(ids(&elb, TG80), vec!["i-01:30080", "i-02:30080", "i-03:30080"], "{code}");
        assert_eq!(elb.calls().register, 2, "{code}: no write is retried");
        let run = kube_rtsync::shared::metrics::Invocation { events: published, ..Default::default() };
        let record = kube_rtsync::jobs::targets::report::emf_record("KubeRtsync", &report, &run);
        assert_eq!((record["EventsFailed"].clone(), record["EventsPublished"].clone()), (2.into(), 0.into()));
    }
    // One entry refused inside an accepted call.
    let (ec2, elb) = world();
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    bus.refuse_entries("InternalFailure", 1);
    let config = config(&[]);
    let report = run(&ec2, &elb, &config).await.unwrap();
    let published = crate::support::publish("targets", &config, Some(&report), &bus).await;
    assert_eq!((published.events, published.failed, bus.entries().len()), (1, 1, 1));
}

#[tokio::test]
async fn a_dry_run_and_a_bus_of_none_publish_nothing() {
    for extra in [[("DRY_RUN", "true")], [("EVENT_BUS_NAME", "none")]] {
        let (ec2, elb) = world();
        let bus = kube_rtsync::fake::events::FakeEventBridge::default();
        let config = config(&extra);
        let report = run(&ec2, &elb, &config).await.unwrap();
        let published = crate::support::publish("targets", &config, Some(&report), &bus).await;
        assert_eq!((published.events, published.failed, bus.calls()), (0, 0, 0), "{extra:?}");
        assert_eq!(report.calls.len(), 2, "{extra:?}: the plan has its two registrations");
    }
}
