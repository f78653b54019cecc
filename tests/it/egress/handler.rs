//! The egress job end to end against the in-memory EC2: observe, plan,
//! apply and report, with NATs that stop, fail their checks or flap.

use std::collections::BTreeMap;

use kube_rtsync::aws::ec2::model::{Destination, Instance, NatGateway, Route, RouteTable, Subnet, Target, tag_map};
use kube_rtsync::fake::ec2::{FakeEc2, Fault, Operation};
use kube_rtsync::jobs::egress::config::{Config, FAILBACK_CLOCK_TAG};
use kube_rtsync::jobs::egress::report::{Outcome, Report, WriteStatus};
use kube_rtsync::jobs::egress::{Error, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::event::Trigger;
use kube_rtsync::shared::job::handle_event;
use kube_rtsync::shared::limiter::WriteLimiter;

const VPC: &str = "vpc-0a00000000000001";
const T0: u64 = 1_800_000_000;

fn nat_instance(id: &str, zone: &str, ip: &str) -> Instance {
    Instance {
        zone: Some(zone.into()),
        private_ip: Some(ip.into()),
        source_dest_check: Some(false),
        ..Instance::new(id, VPC, "running")
            .with_tags(&[("aws-nat-router/id", "squid")])
            .with_eni(format!("eni-{}", &id[2..]))
    }
}

fn table(id: &str, subnet: &str, default: Target) -> RouteTable {
    let mut t = RouteTable::new(id, VPC).with_tag("aws-nat-router/id", "squid").with_tag("Name", id);
    t.subnet_ids = vec![subnet.into()];
    t.with_route(Route::active("0.0.0.0/0".parse::<ipnet::IpNet>().unwrap(), default))
}

fn eni(id: &str) -> Target {
    Target::NetworkInterface(id.into())
}

/// Three zones: NAT instances in a and b, a NAT gateway in c, one private
/// table per zone on its own NAT; plus an unenrolled table and one
/// through an internet gateway.
fn vpc() -> FakeEc2 {
    let fake = FakeEc2::new([
        table("rtb-0a", "subnet-a", eni("eni-0a")),
        table("rtb-0b", "subnet-b", eni("eni-0b")),
        table("rtb-0c", "subnet-c", Target::NatGateway("nat-0c".into())),
        table("rtb-0i", "subnet-a", Target::Gateway("igw-01".into())),
        RouteTable { subnet_ids: vec!["subnet-a".into()], ..RouteTable::new("rtb-0u", VPC) }
            .with_route(Route::active("0.0.0.0/0".parse::<ipnet::IpNet>().unwrap(), eni("eni-0a"))),
    ]);
    for (id, zone) in [("subnet-a", "us-east-1a"), ("subnet-b", "us-east-1b"), ("subnet-c", "us-east-1c")] {
        fake.insert_subnet(Subnet { id: id.into(), vpc_id: VPC.into(), zone: zone.into() });
    }
    fake.insert_instance(nat_instance("i-0a", "us-east-1a", "127.0.0.2"));
    fake.insert_instance(nat_instance("i-0b", "us-east-1b", "127.0.0.1"));
    fake.insert_nat_gateway(NatGateway {
        id: "nat-0c".into(),
        vpc_id: VPC.into(),
        subnet_id: Some("subnet-c".into()),
        state: "available".into(),
        tags: tag_map(&[("aws-nat-router/id", "squid")]),
        regional: false,
    });
    fake
}

fn config(extra: &[(&str, &str)]) -> Config {
    crate::support::config_of(&[("VPC_ID", VPC)], extra)
}

async fn run(fake: &FakeEc2, config: &Config, now: u64) -> Result<Report, Error> {
    let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler { ec2: fake, config, limiter: &limiter, deadline: None };
    let report = reconciler.reconcile(vec![Trigger::Schedule { event_id: "test".into() }], now).await?;
    match report.outcome {
        Outcome::Incomplete => Err(Error::Incomplete(Box::new(report))),
        _ => Ok(report),
    }
}

fn default_target(fake: &FakeEc2, table: &str) -> Target {
    let dest = Destination::Cidr("0.0.0.0/0".parse().unwrap());
    fake.table(table).unwrap().route(&dest).unwrap().target.clone()
}

fn clock(fake: &FakeEc2, table: &str) -> Option<String> {
    fake.table(table).unwrap().tags.get(FAILBACK_CLOCK_TAG).cloned()
}

#[tokio::test]
async fn healthy_nats_in_every_zone_mean_no_writes_and_foreign_tables_are_untouched() {
    let fake = vpc();
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(report.outcome, Outcome::InSync);
    assert_eq!(fake.calls().writes() + fake.calls().writes_other, 0);
    // Only describes, all in one round trip: route tables, subnets, instances,
    // gateways, the impaired instances of each status check, and the two
    // questions of the leaving instances (Spot requests marked for termination,
    // scheduled stop events): one call each.
    assert_eq!((fake.calls().describe, fake.calls().describe_other), (1, 7));
    assert_eq!(report.totals.tables, 4, "the unenrolled table is not read as enrolled");
    assert_eq!(report.totals.tables_left_alone, 1, "the table through the internet gateway");
    assert_eq!((report.totals.healthy_nats, report.totals.unhealthy_nats), (3, 0));
}

#[tokio::test]
async fn a_stopped_nat_fails_over_and_fails_back_only_after_the_hold() {
    let fake = vpc();
    let config = config(&[("EGRESS_FAILBACK_SECONDS", "300")]);
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    let report = run(&fake, &config, T0).await.unwrap();
    // Ties between b (instance) and c (gateway), one table each: zone name
    // first.
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));
    assert_eq!(report.totals.tables_failed_over, 1);
    assert_eq!(default_target(&fake, "rtb-0u"), eni("eni-0a"), "unenrolled tables are never written");
    assert_eq!(clock(&fake, "rtb-0a"), None);

    fake.edit_instance("i-0a", |i| i.state = "running".into());
    run(&fake, &config, T0 + 60).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"), "held: healthy for 0 s of 300");
    assert_eq!(clock(&fake, "rtb-0a"), Some((T0 + 60).to_string()));
    run(&fake, &config, T0 + 300).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"), "held: healthy for 240 s of 300");
    let back = run(&fake, &config, T0 + 360).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0a"));
    assert_eq!(back.totals.tables_failed_back, 1);
    assert_eq!(clock(&fake, "rtb-0a"), None);
    assert_eq!(run(&fake, &config, T0 + 420).await.unwrap().outcome, Outcome::InSync);
}

#[tokio::test]
async fn an_impaired_status_check_fails_over() {
    for (system, instance) in [("impaired", "ok"), ("ok", "impaired")] {
        let fake = vpc();
        fake.set_status("i-0b", system, instance);
        run(&fake, &config(&[]), T0).await.unwrap();
        // a and c carry one table each: the tie goes to the lower zone name.
        assert_eq!(default_target(&fake, "rtb-0b"), eni("eni-0a"), "{system}/{instance}");
    }
    // Still initializing is not impaired.
    let fake = vpc();
    fake.set_status("i-0b", "initializing", "initializing");
    assert_eq!(run(&fake, &config(&[]), T0).await.unwrap().outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_flapping_nat_never_gets_its_tables_back() {
    let fake = vpc();
    let config = config(&[("EGRESS_FAILBACK_SECONDS", "300")]);
    let mut route_writes = Vec::new();
    for run_no in 0..12u64 {
        let state = if run_no % 2 == 0 { "stopped" } else { "running" };
        fake.edit_instance("i-0a", |i| i.state = state.into());
        let before = fake.calls().writes();
        run(&fake, &config, T0 + 60 * run_no).await.unwrap();
        route_writes.push(fake.calls().writes() - before);
        assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"), "run {run_no}");
    }
    assert_eq!(route_writes.iter().sum::<usize>(), 1, "one failover, no flapping: {route_writes:?}");
}

#[tokio::test]
async fn with_every_nat_down_nothing_changes_and_the_tables_are_counted() {
    let fake = vpc();
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    fake.edit_instance("i-0b", |i| i.state = "terminated".into());
    fake.edit_nat_gateway("nat-0c", |g| g.state = "deleted".into());
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(report.totals.tables_without_healthy_nat, 3);
    assert_eq!(report.totals.unhealthy_nats, 3);
    assert_eq!(report.outcome, Outcome::InSync, "reported, not failed: no retry can help");
}

#[tokio::test]
async fn a_source_dest_check_is_fixed_when_allowed_and_fails_the_nat_when_not() {
    let fake = vpc();
    fake.edit_instance("i-0b", |i| i.source_dest_check = Some(true));
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(fake.instance("i-0b").unwrap().source_dest_check, Some(false));
    assert_eq!(report.totals.writes, 1);
    assert_eq!(default_target(&fake, "rtb-0b"), eni("eni-0b"));

    let fake = vpc();
    fake.edit_instance("i-0b", |i| i.source_dest_check = Some(true));
    run(&fake, &config(&[("EGRESS_FIX_SOURCE_DEST_CHECK", "false")]), T0).await.unwrap();
    assert_eq!(fake.instance("i-0b").unwrap().source_dest_check, Some(true), "never changed when not allowed");
    assert_eq!(default_target(&fake, "rtb-0b"), eni("eni-0a"));
}

#[tokio::test]
async fn a_nat_that_does_not_answer_the_probe_is_failed_over() {
    // NAT b listens on 127.0.0.1; NAT a's address, 127.0.0.2, has nothing on
    // the port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = vpc();
    let report = run(&fake, &config(&[("EGRESS_PROBE_PORT", &port)]), T0).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));
    assert_eq!(default_target(&fake, "rtb-0b"), eni("eni-0b"));
    let a = report.plan.nats.iter().find(|n| n.id == "i-0a").unwrap();
    assert!(a.health.to_string().contains("127.0.0.2"), "{}", a.health);
}

#[tokio::test]
async fn a_missing_default_route_is_created() {
    let fake = vpc();
    fake.edit("rtb-0b", |t| t.routes.clear());
    run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0b"), eni("eni-0b"));
    assert_eq!(fake.calls().create, 1);
}

#[tokio::test]
async fn throttled_writes_fail_the_invocation_and_the_next_run_finishes() {
    let fake = vpc();
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    fake.inject(Fault::code("RequestLimitExceeded").on(Operation::ReplaceRoute).times(1));
    let Err(Error::Incomplete(report)) = run(&fake, &config(&[]), T0).await else { panic!("expected incomplete") };
    assert_eq!(report.totals.failed, 1);
    assert!(
        report
            .writes
            .iter()
            .any(|w| matches!(&w.status, WriteStatus::Failed { code: Some(c), .. } if c == "RequestLimitExceeded"))
    );
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0a"));
    run(&fake, &config(&[]), T0 + 60).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));
}

#[tokio::test]
async fn a_failed_describe_is_an_error_before_any_write() {
    let fake = vpc();
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    fake.inject(Fault::code("InternalError").on(Operation::DescribeNatGateways));
    let err = run(&fake, &config(&[]), T0).await.unwrap_err();
    assert!(matches!(err, Error::Describe(_)), "{err}");
    assert_eq!(fake.calls().writes(), 0);
}

#[tokio::test]
async fn test_notifications_do_nothing_and_state_changes_reconcile() {
    let fake = vpc();
    let config = config(&[]);
    let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler { ec2: &fake, config: &config, limiter: &limiter, deadline: None };
    let test: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/sns-test-notification.json")).unwrap();
    assert_eq!(handle_event(&reconciler, &test).await.unwrap().outcome, Outcome::NothingToDo);
    assert_eq!(fake.calls().describe, 0);
    let running: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/eventbridge-instance-running.json")).unwrap();
    assert_eq!(handle_event(&reconciler, &running).await.unwrap().outcome, Outcome::InSync);
    assert_eq!(fake.calls().describe, 1, "any instance's event costs one reconcile");
}

#[tokio::test]
async fn a_nat_whose_source_dest_fix_failed_carries_no_table() {
    for code in ["UnauthorizedOperation", "RequestLimitExceeded"] {
        let fake = vpc();
        // Zone a's NAT is down, so rtb-0a must move; b's NAT cannot forward
        // until its check is off, and that fix is refused (an SCP, a
        // permission boundary, throttling).
        fake.edit_instance("i-0a", |i| i.state = "stopped".into());
        fake.edit_instance("i-0b", |i| i.source_dest_check = Some(true));
        fake.inject(Fault::code(code).on(Operation::ModifyInstanceAttribute));
        let err = run(&fake, &config(&[]), T0).await.expect_err("the failed fix fails the invocation");
        let Error::Incomplete(report) = &err else { panic!("{code}: {err}") };
        assert_eq!(fake.instance("i-0b").unwrap().source_dest_check, Some(true), "{code}");
        let gateway = Target::NatGateway("nat-0c".into());
        assert_eq!(default_target(&fake, "rtb-0a"), gateway, "{code}: zone a went to a NAT that drops its traffic");
        assert_eq!(default_target(&fake, "rtb-0b"), gateway, "{code}: zone b stayed on a NAT that cannot forward");
        assert_eq!(report.totals.failed, 1, "{code}: only the fix failed");
        // A retry once the fix is allowed brings zone b home.
        fake.clear_faults();
        run(&fake, &config(&[("EGRESS_FAILBACK_SECONDS", "0")]), T0 + 60).await.unwrap();
        assert_eq!(default_target(&fake, "rtb-0b"), eni("eni-0b"), "{code}");
    }
}

#[tokio::test]
async fn default_routes_through_next_hops_that_are_not_enrolled_nats_are_left_alone_and_counted() {
    let fake = vpc();
    // Zone a's NAT is down: every table of zone a would be moved if its
    // next hop counted as a failed NAT.
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    let appliance =
        Instance { tags: tag_map(&[("Name", "firewall")]), ..nat_instance("i-0f", "us-east-1a", "10.0.0.9") };
    fake.insert_instance(appliance);
    fake.insert_nat_gateway(NatGateway {
        id: "nat-0o".into(),
        vpc_id: VPC.into(),
        subnet_id: Some("subnet-a".into()),
        state: "available".into(),
        tags: tag_map(&[("aws-nat-router/id", "another-router")]),
        regional: false,
    });
    let next_hops = [
        ("rtb-0f", eni("eni-0f")),
        ("rtb-0g", Target::Instance("i-0f".into())),
        ("rtb-0o", Target::NatGateway("nat-0o".into())),
        ("rtb-0t", Target::TransitGateway("tgw-01".into())),
        ("rtb-0p", Target::VpcPeeringConnection("pcx-01".into())),
    ];
    for (id, target) in &next_hops {
        fake.insert(table(id, "subnet-a", target.clone()));
    }
    fake.blackhole(&Target::TransitGateway("tgw-01".into()));
    fake.blackhole(&Target::VpcPeeringConnection("pcx-01".into()));
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    for (id, target) in &next_hops {
        assert_eq!(&default_target(&fake, id), target, "{id} was moved");
    }
    assert_ne!(default_target(&fake, "rtb-0a"), eni("eni-0a"), "zone a's own table still fails over");
    // The five above and the table through the internet gateway.
    assert_eq!(report.totals.tables_left_alone, 6);
    let record = kube_rtsync::jobs::egress::report::emf_record("KubeRtsync", &report, &Default::default());
    assert_eq!(record["TablesLeftAlone"], 6, "{record}");
    assert_eq!(record["Job"], "egress", "{record}");
}

#[tokio::test]
async fn status_checks_are_asked_for_the_impaired_instances_only_in_the_first_round_trip() {
    // An account with 500 other running instances.
    let fake = vpc();
    for n in 0..500 {
        fake.insert_instance(Instance {
            tags: BTreeMap::new(),
            ..nat_instance(&format!("i-{n:04}"), "us-east-1a", "10.0.9.9")
        });
    }
    fake.set_status("i-0a", "impaired", "ok");
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(report.totals.tables_failed_over, 1, "the impaired NAT's status was read");
    // Subnets, NAT instances (by tag), gateways, the two leaving questions, and
    // one call per status check, which answers for the one impaired instance
    // alone, whatever the account's other instances.
    assert_eq!(fake.calls().describe_other, 7);
    assert_eq!(fake.calls().statuses_read, 1);
}

#[tokio::test]
async fn a_failed_clock_delete_is_reported_and_a_leftover_clock_never_skips_a_hold() {
    let fake = vpc();
    let config = config(&[("EGRESS_FAILBACK_SECONDS", "300")]);
    // rtb-0a is home on its healthy NAT, with a clock left from an old
    // failover.
    fake.edit("rtb-0a", |t| drop(t.tags.insert(FAILBACK_CLOCK_TAG.into(), (T0 - 7200).to_string())));
    fake.inject(Fault::code("UnauthorizedOperation").on(Operation::DeleteTags));
    let err = run(&fake, &config, T0).await.expect_err("a clock that cannot be cleared is a failed write");
    let Error::Incomplete(report) = &err else { panic!("{err}") };
    let failed: Vec<&str> = report
        .writes
        .iter()
        .filter(|w| matches!(w.status, WriteStatus::Failed { .. }))
        .map(|w| w.change.as_str())
        .collect();
    assert_eq!(failed, [format!("untag {FAILBACK_CLOCK_TAG}")]);
    // Zone a's NAT fails and comes back while the clock is still there: the
    // leftover does not count as two hours of health.
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    let _ = run(&fake, &config, T0 + 60).await;
    fake.edit_instance("i-0a", |i| i.state = "running".into());
    let _ = run(&fake, &config, T0 + 120).await;
    assert_ne!(default_target(&fake, "rtb-0a"), eni("eni-0a"), "failed back without the hold");
    assert_eq!(clock(&fake, "rtb-0a"), Some((T0 + 120).to_string()), "the clock restarted");
}

#[tokio::test]
async fn the_plan_and_the_report_read_as_the_golden_files_say() {
    use kube_rtsync::shared::report::JobReport;
    let fake = vpc();
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    fake.edit_instance("i-0b", |i| i.source_dest_check = Some(true));
    let dry = run(&fake, &config(&[("DRY_RUN", "true")]), T0).await.unwrap();
    crate::support::golden::assert_golden("egress-plan", &dry.render(false));
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    crate::support::golden::assert_golden("egress-sync", &report.render(false));
}

#[tokio::test]
async fn a_spot_warning_on_a_nat_moves_its_table_while_it_still_forwards_and_later_runs_keep_it_moved() {
    let fake = vpc();
    let config = config(&[]);
    fake.warn_spot_interruption("i-0a");
    let report = run(&fake, &config, T0).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));
    assert_eq!(report.totals.tables_failed_over, 1);
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    let published = crate::support::publish("egress", &config, Some(&report), &bus).await;
    assert_eq!((published.events, published.failed), (1, 0));
    assert_eq!(bus.entries()[0].detail_type, "egress change");
    assert_eq!(bus.entries()[0].resources, vec!["arn:aws:ec2:us-east-1:123456789012:route-table/rtb-0a".to_string()]);
    assert_eq!(
        bus.details()[0],
        serde_json::json!({
            "job": "egress",
            "vpcId": VPC,
            "resource": "rtb-0a",
            "change": "~ rtb-0a \"rtb-0a\" (us-east-1a): eni-0a (i-0a, unhealthy: leaving: Spot interruption warning) -> eni-0b (i-0b, us-east-1b): fail over",
            "from": "i-0a",
            "to": "i-0b",
            "reason": "fail over: leaving: Spot interruption warning",
            "invocationId": "inv-1",
        })
    );
    // The scheduled runs after it agree: the NAT is still leaving, the table
    // stays where it went.
    let again = run(&fake, &config, T0 + 60).await.unwrap();
    assert_eq!(again.outcome, Outcome::InSync, "{}", again.plan);
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));
    assert_eq!(crate::support::publish("egress", &config, Some(&again), &bus).await.events, 0);
}

#[tokio::test]
async fn the_regional_fallback_takes_a_dark_zone_s_table_before_another_zone_s_nat_and_gives_it_back_after_the_hold() {
    let with_regional = || {
        let fake = vpc();
        fake.insert_nat_gateway(NatGateway {
            id: "nat-0r".into(),
            vpc_id: VPC.into(),
            subnet_id: Some("subnet-b".into()),
            state: "available".into(),
            tags: BTreeMap::from([("aws-nat-router/id".to_string(), "squid".to_string())]),
            regional: true,
        });
        fake.edit_instance("i-0a", |i| i.state = "stopped".into());
        fake
    };
    // Off: the rules as before, the regional gateway is never a target.
    let fake = with_regional();
    run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));

    let fake = with_regional();
    let config = config(&[("EGRESS_REGIONAL_FALLBACK", "true"), ("EGRESS_FAILBACK_SECONDS", "300")]);
    let report = run(&fake, &config, T0).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), Target::NatGateway("nat-0r".into()));
    assert_eq!(report.totals.tables_failed_over, 1);
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    crate::support::publish("egress", &config, Some(&report), &bus).await;
    let detail = &bus.details()[0];
    assert_eq!((detail["from"].as_str(), detail["to"].as_str()), (Some("i-0a"), Some("nat-0r")));
    assert_eq!(detail["reason"], "regional fallback: state stopped");
    assert!(detail["change"].as_str().unwrap().ends_with("-> nat-0r (regional): regional fallback"), "{detail}");
    // Zone a's NAT is back: held, then back home once healthy for the hold.
    fake.edit_instance("i-0a", |i| i.state = "running".into());
    run(&fake, &config, T0 + 60).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), Target::NatGateway("nat-0r".into()), "held");
    let back = run(&fake, &config, T0 + 360).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0a"));
    assert_eq!(back.totals.tables_failed_back, 1);
}

#[tokio::test]
async fn a_stopped_nat_fails_over_even_when_ec2_will_not_say_which_instances_are_leaving() {
    let fake = vpc();
    fake.inject(Fault::code("UnauthorizedOperation").on(Operation::DescribeSpotInstanceRequests));
    fake.edit_instance("i-0a", |i| i.state = "stopped".into());
    let report = run(&fake, &config(&[]), T0).await.unwrap();
    assert_eq!(default_target(&fake, "rtb-0a"), eni("eni-0b"));
    assert_eq!(report.totals.tables_failed_over, 1);
}
