//! The whole handler (decode -> observe -> plan -> apply -> report) against
//! the in-memory EC2.

use std::time::Duration;

use crate::support::*;
use kube_rtsync::aws::ec2::FailureKind;
use kube_rtsync::aws::ec2::model::{Route, RouteTable, Target};
use kube_rtsync::fake::ec2::{FakeEc2, Fault, Operation};
use kube_rtsync::jobs::routes::Reconciler;
use kube_rtsync::jobs::routes::config::Config;
use kube_rtsync::jobs::routes::report::{Outcome, Report};
use kube_rtsync::jobs::routes::{Error, Problem};
use kube_rtsync::shared::job::handle_event;
use kube_rtsync::shared::limiter::WriteLimiter;
use serde_json::Value;
use tokio::time::Instant;

async fn run(fake: &FakeEc2, config: &Config, event: &Value) -> Result<Report, Error> {
    run_with_deadline(fake, config, event, None).await
}

async fn run_with_deadline(
    fake: &FakeEc2,
    config: &Config,
    event: &Value,
    deadline: Option<Instant>,
) -> Result<Report, Error> {
    // The limiter is off: these tests are about what is written, not when.
    let limiter = WriteLimiter::new(kube_rtsync::jobs::routes::config::WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler { ec2: fake, config, limiter: &limiter, deadline };
    handle_event(&reconciler, event).await
}

fn sorted(mut routes: Vec<Route>) -> Vec<Route> {
    routes.sort_by(|a, b| a.destination.cmp(&b.destination));
    routes
}

/// The table's routes inside 100.96.0.0/11.
fn pod_routes_of(table: &RouteTable) -> Vec<Route> {
    let managed = kube_rtsync::jobs::routes::config::parse_route_cidrs("100.96.0.0/11").unwrap();
    sorted(table.routes.iter().filter(|r| managed.contains(&r.destination)).cloned().collect())
}

/// Every private table holds exactly the cluster's pod routes, and every
/// route kube-rtsync must not touch is still there, unchanged.
fn assert_mirrored(fake: &FakeEc2, before: &[RouteTable]) {
    for id in PRIVATE {
        let table = fake.table(id).unwrap();
        assert_eq!(pod_routes_of(&table), sorted(pod_routes()), "{id} does not mirror the cluster");
        let original = before.iter().find(|t| t.id == id).unwrap();
        for r in original.routes.iter().filter(|r| !pod_routes_of(original).contains(r)) {
            let kept = table.routes.contains(r);
            let was_managed =
                r.destination.cidr().is_some_and(|n| "100.96.0.0/11".parse::<ipnet::IpNet>().unwrap().contains(&n));
            assert!(kept || was_managed, "{id} lost the unmanaged route {r:?}");
        }
    }
    for untouched in ["rtb-0c0000000000000c", "rtb-0e0000000000000e", "rtb-0f0000000000000f"] {
        assert_eq!(fake.table(untouched), before.iter().find(|t| t.id == untouched).cloned(), "{untouched} changed");
    }
}

#[tokio::test]
async fn a_launch_event_mirrors_the_cluster_routes_with_the_minimal_writes() {
    let before = vpc();
    let fake = FakeEc2::new(before.clone());
    let report = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();

    assert_mirrored(&fake, &before);
    // a: delete .9, replace .2, create .1 and .3; b: create 3; c: create .2 and
    // .3.
    let calls = fake.calls();
    assert_eq!((calls.create, calls.replace, calls.delete), (7, 1, 1));
    assert_eq!(calls.describe, 2);
    assert_eq!(report.outcome, Outcome::Synced);
    assert_eq!(report.source_route_table_id.as_deref(), Some("rtb-0c0000000000000c"));
    assert_eq!((report.totals.created, report.totals.replaced, report.totals.deleted), (7, 1, 1));
    assert_eq!(report.totals.tables, 3);
    assert_eq!(report.managed_routes, 3);
    let a = &report.tables[0];
    assert_eq!(a.route_table_id, "rtb-0a0000000000000a");
    assert_eq!(a.replaced[0].from, i("i-0old0000000000002"));
    assert_eq!(a.replaced[0].to, eni("eni-0200000000000002"));
    assert_eq!(a.deleted[0].destination, cidr("100.96.9.0/24"));
}

#[tokio::test]
async fn a_duplicate_delivery_writes_nothing() {
    let fake = FakeEc2::new(vpc());
    let config = config(&[]);
    run(&fake, &config, &event(LAUNCH)).await.unwrap();
    fake.reset_counters();
    let again = run(&fake, &config, &event(LAUNCH)).await.unwrap();
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(again.outcome, Outcome::InSync);
    let terminate = run(&fake, &config, &event(TERMINATE)).await.unwrap();
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(terminate.outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_terminated_node_blackhole_is_removed_everywhere() {
    let fake = FakeEc2::new(vpc());
    let config = config(&[]);
    run(&fake, &config, &event(LAUNCH)).await.unwrap();
    // The node behind 100.96.3.0/24 terminates: EC2 blackholes its routes.
    fake.blackhole(&i("i-0300000000000003"));
    fake.reset_counters();
    let report = run(&fake, &config, &event(TERMINATE)).await.unwrap();
    assert_eq!(report.totals.deleted, 3);
    assert_eq!(fake.calls().writes(), 3);
    for id in PRIVATE {
        assert!(fake.table(id).unwrap().route(&cidr("100.96.3.0/24")).is_none(), "{id}");
    }
    // The cluster's own blackhole is the controller's business.
    assert!(fake.table("rtb-0c0000000000000c").unwrap().route(&cidr("100.96.3.0/24")).is_some());
}

#[tokio::test]
async fn a_test_notification_reads_and_writes_nothing() {
    let fake = FakeEc2::new(vpc());
    let report = run(&fake, &config(&[]), &event(TEST_NOTIFICATION)).await.unwrap();
    assert_eq!(report.outcome, Outcome::NothingToDo);
    assert_eq!(fake.calls(), Default::default());
}

#[tokio::test]
async fn malformed_events_fail_before_any_call() {
    let mut not_json = event(LAUNCH);
    not_json["Records"][0]["Sns"]["Message"] = Value::String("<html>".into());
    let mut not_asg = event(LAUNCH);
    not_asg["Records"][0]["Sns"]["Message"] = Value::String(r#"{"AlarmName":"cpu"}"#.into());
    for bad in [not_json, not_asg, serde_json::json!({"hello": "world"})] {
        let fake = FakeEc2::new(vpc());
        let err = run(&fake, &config(&[]), &bad).await.unwrap_err();
        assert!(matches!(err, Error::Event(_)), "{err}");
        assert_eq!(err.kind(), "InvalidEvent");
        assert_eq!(fake.calls(), Default::default());
    }
}

#[tokio::test]
async fn a_missing_source_is_an_error_and_changes_nothing() {
    let before = vpc();
    let fake = FakeEc2::new(before.clone());
    let err = run(&fake, &config(&[("KUBE_CLUSTER_NAME", "other.example.com")]), &event(LAUNCH)).await.unwrap_err();
    assert!(matches!(err, Error::Job(Problem::SourceNotFound { .. })), "{err}");
    assert!(err.to_string().contains("KubernetesCluster=other.example.com"), "{err}");
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(fake.tables(), sorted_tables(before));

    // An explicit table id in another VPC is not found either.
    let fake = FakeEc2::new(vpc());
    let err =
        run(&fake, &config(&[("SOURCE_ROUTE_TABLE_ID", "rtb-0f0000000000000f")]), &event(LAUNCH)).await.unwrap_err();
    assert!(matches!(err, Error::Job(Problem::SourceNotFound { .. })), "{err}");
    assert_eq!(fake.calls().writes(), 0);
}

fn sorted_tables(mut tables: Vec<RouteTable>) -> Vec<RouteTable> {
    tables.sort_by(|a, b| a.id.cmp(&b.id));
    tables
}

#[tokio::test]
async fn an_ambiguous_source_is_an_error_and_changes_nothing() {
    let mut tables = vpc();
    tables.push(
        table("rtb-0c1000000000000c", "cluster-copy", pod_routes())
            .with_tag("kubernetes.io/cluster/k8s.example.com", "owned"),
    );
    let fake = FakeEc2::new(tables);
    let err = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap_err();
    match &err {
        Error::Job(Problem::AmbiguousSource { ids, .. }) => assert_eq!(ids.len(), 2),
        other => panic!("expected an ambiguous source, got {other}"),
    }
    assert!(err.to_string().contains("SOURCE_ROUTE_TABLE_ID"));
    assert_eq!(fake.calls().writes(), 0);
}

#[tokio::test]
async fn the_new_style_tag_and_an_explicit_id_both_find_the_source() {
    let mut tables = vpc();
    tables[0].tags.clear();
    tables[0].tags.insert("kubernetes.io/cluster/k8s.example.com".into(), "owned".into());
    // Another cluster's legacy tag in the same VPC is not ours.
    tables.push(table("rtb-0c2000000000000c", "other-cluster", vec![]).with_tag("KubernetesCluster", "other"));
    let before = tables.clone();
    let fake = FakeEc2::new(tables.clone());
    run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();
    assert_mirrored(&fake, &before);

    let fake = FakeEc2::new(vpc());
    let by_id = config(&[("SOURCE_ROUTE_TABLE_ID", "rtb-0c0000000000000c")]);
    let report = run(&fake, &by_id, &event(LAUNCH)).await.unwrap();
    assert_eq!(report.source_route_table_id.as_deref(), Some("rtb-0c0000000000000c"));
    assert_mirrored(&fake, &vpc());
}

#[tokio::test]
async fn dry_run_reports_the_plan_and_writes_nothing() {
    let before = vpc();
    let fake = FakeEc2::new(before.clone());
    let report = run(&fake, &config(&[("DRY_RUN", "true")]), &event(LAUNCH)).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.outcome, Outcome::DryRun);
    assert_eq!((report.totals.created, report.totals.replaced, report.totals.deleted), (7, 1, 1));
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(fake.tables(), sorted_tables(before));
}

#[tokio::test]
async fn custom_filters_select_the_targets() {
    let fake = FakeEc2::new(vpc());
    let only_b = config(&[("PRIVATE_RT_FILTERS", r#"[{"Name":"tag:Name","Values":["*-1b"]}]"#)]);
    let report = run(&fake, &only_b, &event(LAUNCH)).await.unwrap();
    assert_eq!(report.tables.len(), 1);
    assert_eq!(report.tables[0].route_table_id, "rtb-0b0000000000000b");
    assert_eq!(fake.calls().writes(), 3);
    assert_eq!(fake.table("rtb-0a0000000000000a"), vpc().into_iter().find(|t| t.id == "rtb-0a0000000000000a"));
}

#[tokio::test]
async fn a_filter_matching_the_source_never_writes_to_it() {
    let fake = FakeEc2::new(vpc());
    let everything = config(&[("PRIVATE_RT_FILTERS", r#"[{"Name":"tag-key","Values":["Name"]}]"#)]);
    let report = run(&fake, &everything, &event(LAUNCH)).await.unwrap();
    assert!(report.tables.iter().all(|t| t.route_table_id != "rtb-0c0000000000000c"));
    assert!(fake.writes().iter().all(|w| w.route_table_id != "rtb-0c0000000000000c"));
    assert!(fake.writes().iter().all(|w| w.route_table_id != "rtb-0f0000000000000f"));
}

#[tokio::test]
async fn more_than_a_hundred_tables_are_read_page_by_page() {
    let mut tables =
        vec![table("rtb-0c0000000000000c", "cluster", pod_routes()).with_tag("KubernetesCluster", CLUSTER)];
    tables.extend((0..150).map(|n| table(&format!("rtb-1{n:015x}"), &format!("private_{n}"), untouchable("nat-0a"))));
    let fake = FakeEc2::new(tables).with_page_size(100);
    let report = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();
    assert_eq!(report.tables.len(), 150);
    assert_eq!(report.totals.created, 450);
    // 151 tables in the VPC: the source lookup reads only the tables with
    // a cluster tag key (one page), the targets two pages.
    assert_eq!(fake.calls().describe, 3);
    assert_eq!(fake.calls().create, 450);
}

#[tokio::test]
async fn one_failing_table_does_not_stop_the_others() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("UnauthorizedOperation").on_table("rtb-0b0000000000000b"));
    let err = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap_err();
    let Error::Incomplete(report) = &err else { panic!("expected an incomplete sync, got {err}") };
    assert_eq!(err.kind(), "SyncIncomplete");
    assert!(
        err.to_string().contains("rtb-0b0000000000000b") && err.to_string().contains("UnauthorizedOperation"),
        "{err}"
    );
    let b = report.tables.iter().find(|t| t.route_table_id == "rtb-0b0000000000000b").unwrap();
    assert_eq!(b.failures.len(), 1);
    assert_eq!(b.failures[0].code.as_deref(), Some("UnauthorizedOperation"));
    assert!(b.failures[0].hint.contains("IAM"));
    // The table's remaining writes are not attempted after an authorization
    // error.
    assert_eq!(b.not_started.len(), 2);
    for id in ["rtb-0a0000000000000a", "rtb-0d0000000000000d"] {
        assert_eq!(pod_routes_of(&fake.table(id).unwrap()), sorted(pod_routes()), "{id}");
    }
    // The retry finishes the work.
    fake.clear_faults();
    fake.reset_counters();
    run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();
    assert_eq!(fake.calls().writes(), 3);
    assert_mirrored(&fake, &vpc());
}

#[tokio::test]
async fn a_failing_route_does_not_stop_the_rest_of_its_table() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::timeout().on(Operation::CreateRoute).on_table("rtb-0b0000000000000b").times(1));
    let Err(Error::Incomplete(report)) = run(&fake, &config(&[]), &event(LAUNCH)).await else {
        panic!("expected an incomplete sync")
    };
    let b = report.tables.iter().find(|t| t.route_table_id == "rtb-0b0000000000000b").unwrap();
    assert_eq!(b.failures.len(), 1);
    assert_eq!(b.failures[0].kind, FailureKind::Timeout);
    assert_eq!(b.created.len(), 2);
    assert!(b.not_started.is_empty());
}

#[tokio::test]
async fn describe_failures_stop_before_any_write() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("RequestLimitExceeded").on(Operation::DescribeRouteTables).times(1));
    let err = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap_err();
    assert!(matches!(err, Error::Describe(_)), "{err}");
    assert!(err.to_string().contains("RequestLimitExceeded"));
    assert_eq!(fake.calls().writes(), 0);
}

#[tokio::test]
async fn races_with_another_writer_are_absorbed() {
    let fake = FakeEc2::new(vpc());
    // Between our describe and our first write, someone else creates a
    // route we are about to create, deletes one we are about to delete,
    // and removes the one we are about to replace.
    fake.interleave(|tables| {
        let b = tables.get_mut("rtb-0b0000000000000b").unwrap();
        b.routes.push(route("100.96.1.0/24", i("i-0stale00000000001")));
        let a = tables.get_mut("rtb-0a0000000000000a").unwrap();
        a.routes.retain(|r| r.destination != cidr("100.96.9.0/24") && r.destination != cidr("100.96.2.0/24"));
    });
    let report = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Synced);
    assert_mirrored(&fake, &vpc());
    // Each race costs one extra call: create->replace, replace->create; the
    // delete just succeeds.
    let calls = fake.calls();
    assert_eq!((calls.create, calls.replace, calls.delete), (7 + 1, 1 + 1, 1));
}

#[tokio::test]
async fn nothing_starts_once_the_deadline_is_too_close() {
    let fake = FakeEc2::new(vpc());
    let deadline = Instant::now() + Duration::from_secs(1);
    let err = run_with_deadline(&fake, &config(&[]), &event(LAUNCH), Some(deadline)).await.unwrap_err();
    let Error::Incomplete(report) = err else { panic!("expected an incomplete sync") };
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(report.totals.not_started, 9);
    assert!(report.tables[0].not_started[0].reason.contains("deadline"));
}

#[tokio::test]
async fn an_empty_source_withholds_deletes_and_reports_them_without_failing() {
    // No retry can make a withheld change: it is reported and counted, and
    // the invocation succeeds so that Lambda does not retry it for nothing.
    let mut tables = vpc();
    tables[0].routes.retain(|r| !r.destination.to_string().starts_with("100.96."));
    let fake = FakeEc2::new(tables);
    let report = run(&fake, &config(&[]), &event(LAUNCH)).await.expect("withheld changes do not fail the invocation");
    assert_eq!(report.totals.withheld, 3);
    assert_eq!(report.totals.tables_failed, 0);
    assert_eq!(fake.calls().writes(), 0);

    let fake = FakeEc2::new(
        vpc()
            .into_iter()
            .map(|mut t| {
                if t.id == "rtb-0c0000000000000c" {
                    t.routes.truncate(2)
                }
                t
            })
            .collect::<Vec<_>>(),
    );
    let report = run(&fake, &config(&[("ALLOW_EMPTY_SOURCE", "true")]), &event(LAUNCH)).await.unwrap();
    assert_eq!(report.totals.deleted, 3);
}

#[tokio::test]
async fn eventbridge_state_changes_and_schedules_reconcile() {
    let before = vpc();
    for sample in [RUNNING, TERMINATED, SCHEDULED] {
        let fake = FakeEc2::new(before.clone());
        let report = run(&fake, &config(&[]), &event(sample)).await.unwrap();
        assert_eq!(report.outcome, Outcome::Synced, "{sample}");
        assert_mirrored(&fake, &before);
    }
    let mut pending = event(RUNNING);
    pending["detail"]["state"] = Value::String("pending".into());
    let fake = FakeEc2::new(before.clone());
    assert_eq!(run(&fake, &config(&[]), &pending).await.unwrap().outcome, Outcome::NothingToDo);
    assert_eq!(fake.calls(), Default::default());

    let unknown =
        serde_json::json!({"source": "aws.autoscaling", "detail-type": "EC2 Instance Launch Successful", "detail": {}});
    let err = run(&fake, &config(&[]), &unknown).await.unwrap_err();
    assert!(err.to_string().contains("unsupported EventBridge event"), "{err}");
    assert_eq!(fake.calls(), Default::default());
}

/// The launch sample's instance, a node of the cluster in the VPC.
fn with_sample_node(fake: FakeEc2) -> FakeEc2 {
    fake.insert_instance(kube_rtsync::aws::ec2::model::Instance {
        id: SAMPLE_INSTANCE.into(),
        vpc_id: VPC.into(),
        state: "running".into(),
        tags: [("KubernetesCluster".to_owned(), CLUSTER.to_owned())].into(),
        ..Default::default()
    });
    fake
}

/// The launch sample's instance gets its pod route.
fn new_node_route(tables: &mut std::collections::BTreeMap<String, RouteTable>) {
    let source = tables.get_mut("rtb-0c0000000000000c").unwrap();
    source.routes.push(route("100.96.5.0/24", i(SAMPLE_INSTANCE)));
}

// Paused time: the waits are exact and cost no wall-clock time.
#[tokio::test(start_paused = true)]
async fn a_new_node_route_that_appears_while_waiting_is_mirrored() {
    let fake = with_sample_node(FakeEc2::new(vpc()));
    // Describes 1 and 2 are the first reconcile; 3, 4, 5 are the checks.
    fake.on_describe(5, new_node_route);
    let report = run(&fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(LAUNCH)).await.unwrap();
    let wait = report.route_wait.clone().unwrap();
    assert!(wait.found);
    assert_eq!(wait.checks, 3);
    // Checks after 2, 2+4 and 2+4+8 seconds.
    assert_eq!(wait.waited_ms, 14_000);
    for id in PRIVATE {
        assert!(fake.table(id).unwrap().route(&cidr("100.96.5.0/24")).is_some(), "{id}");
    }
    assert_eq!(report.totals.created, 7 + 3);
    assert_eq!(fake.calls().describe, 2 + 3 + 2);
    assert_eq!(fake.calls().writes(), 9 + 3);
}

#[tokio::test(start_paused = true)]
async fn a_new_node_route_that_never_appears_ends_the_wait_without_error() {
    let fake = with_sample_node(FakeEc2::new(vpc()));
    let report = run(&fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(RUNNING)).await.unwrap();
    let wait = report.route_wait.clone().unwrap();
    assert!(!wait.found);
    // Checks at 2, 6, 14, 29, 44, 59 and 60 seconds.
    assert_eq!((wait.checks, wait.waited_ms), (7, 60_000));
    assert_eq!(report.outcome, Outcome::Synced);
    assert_eq!(fake.calls().describe, 2 + 7);
}

#[tokio::test(start_paused = true)]
async fn no_wait_when_the_route_is_there_or_the_event_is_not_a_launch() {
    let mut tables = vpc();
    tables[0].routes.push(route("100.96.5.0/24", i(SAMPLE_INSTANCE)));
    let fake = FakeEc2::new(tables);
    let report = run(&fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(LAUNCH)).await.unwrap();
    assert_eq!(report.route_wait, None);
    assert_eq!(fake.calls().describe, 2);

    let fake = with_sample_node(FakeEc2::new(vpc()));
    let report = run(&fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(TERMINATE)).await.unwrap();
    assert_eq!(report.route_wait, None);
    assert_eq!(fake.calls().describe, 2);
}

#[tokio::test(start_paused = true)]
async fn the_wait_stops_short_of_the_deadline() {
    let fake = with_sample_node(FakeEc2::new(vpc()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = run_with_deadline(&fake, &config(&[("ROUTE_WAIT_SECONDS", "600")]), &event(LAUNCH), Some(deadline))
        .await
        .unwrap();
    let wait = report.route_wait.unwrap();
    // 30 s - 10 s margin - 10 s kept for the second pass: checks at 2, 6 and 10
    // s.
    assert_eq!((wait.checks, wait.waited_ms), (3, 10_000));
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_first_pass_still_reports_what_was_written() {
    // The wait's first check finds the source gone (its tag removed), and
    // in a second run the check's describe fails: both after the first
    // pass wrote 9 routes, which the error must still report.
    let vanish = with_sample_node(FakeEc2::new(vpc()));
    vanish.on_describe(3, |tables| {
        tables.get_mut("rtb-0c0000000000000c").unwrap().tags.remove("KubernetesCluster");
    });
    let failing = with_sample_node(FakeEc2::new(vpc()));
    failing.inject(Fault::code("InternalError").on(Operation::DescribeRouteTables).every(3));
    for (fake, cause) in [(&vanish, "no source route table"), (&failing, "InternalError")] {
        let result = run(fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(LAUNCH)).await;
        let Err(Error::Incomplete(report)) = result else { panic!("{cause}: {result:?}") };
        assert_eq!(fake.calls().writes(), 9, "{cause}");
        assert_eq!(report.totals.created + report.totals.replaced + report.totals.deleted, 9, "{cause}");
        assert_eq!(report.outcome, Outcome::Incomplete, "{cause}");
        assert_eq!(report.errors.len(), 1, "{cause}");
        assert!(report.errors[0].contains(cause), "{}", report.errors[0]);
        let message = Error::Incomplete(report).to_string();
        assert!(message.contains("new node's route") && message.contains(cause), "{message}");
    }
}

#[tokio::test]
async fn an_operators_gateway_route_inside_the_cidrs_is_left_alone_and_reported() {
    let mut tables = vpc();
    let tgw = route("100.100.0.0/16", Target::TransitGateway("tgw-0a1".into()));
    tables[1].routes.push(tgw.clone());
    tables[0].routes.push(route("100.101.0.0/16", Target::TransitGateway("tgw-0a1".into())));
    let fake = FakeEc2::new(tables);
    let report = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();
    assert!(fake.table("rtb-0a0000000000000a").unwrap().routes.contains(&tgw), "never deleted");
    for id in PRIVATE {
        assert!(fake.table(id).unwrap().route(&cidr("100.101.0.0/16")).is_none(), "never copied into {id}");
    }
    let a = report.tables.iter().find(|t| t.route_table_id == "rtb-0a0000000000000a").unwrap();
    assert!(a.skipped.iter().any(|s| s.destination == cidr("100.100.0.0/16")), "{:?}", a.skipped);
    assert!(report.skipped.iter().any(|s| s.destination == cidr("100.101.0.0/16")), "{:?}", report.skipped);
}

#[tokio::test(start_paused = true)]
async fn another_instances_launch_costs_one_reconcile_and_never_a_wait() {
    for (instance, why) in [
        (
            kube_rtsync::aws::ec2::model::Instance {
                id: SAMPLE_INSTANCE.into(),
                vpc_id: VPC.into(),
                ..Default::default()
            },
            "untagged",
        ),
        (
            kube_rtsync::aws::ec2::model::Instance {
                id: SAMPLE_INSTANCE.into(),
                vpc_id: OTHER_VPC.into(),
                tags: [("KubernetesCluster".to_owned(), CLUSTER.to_owned())].into(),
                ..Default::default()
            },
            "in another VPC",
        ),
    ] {
        let fake = FakeEc2::new(vpc());
        fake.insert_instance(instance);
        let start = Instant::now();
        let report = run(&fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(LAUNCH)).await.unwrap();
        assert_eq!(report.route_wait, None, "{why}");
        assert_eq!(fake.calls().describe, 2, "{why}: one reconcile");
        assert_eq!(start.elapsed(), Duration::ZERO, "{why}: no wait");
    }
    // An instance nobody knows (another account's event, or gone): no wait
    // either.
    let fake = FakeEc2::new(vpc());
    let report = run(&fake, &config(&[("ROUTE_WAIT_SECONDS", "60")]), &event(RUNNING)).await.unwrap();
    assert_eq!((report.route_wait, fake.calls().describe), (None, 2));
}

#[tokio::test]
async fn the_plan_and_the_report_read_as_the_golden_files_say() {
    use kube_rtsync::shared::report::JobReport;
    let fake = FakeEc2::new(vpc());
    let dry = run(&fake, &config(&[("DRY_RUN", "true")]), &event(LAUNCH)).await.unwrap();
    crate::support::golden::assert_golden("routes-plan", &dry.render(false));
    let report = run(&fake, &config(&[]), &event(LAUNCH)).await.unwrap();
    crate::support::golden::assert_golden("routes-sync", &report.render(false));
}

#[tokio::test]
async fn a_sync_publishes_one_change_event_per_route_written_in_one_call() {
    let fake = FakeEc2::new(vpc());
    let config = config(&[]);
    let report = run(&fake, &config, &event(LAUNCH)).await.unwrap();
    let bus = kube_rtsync::fake::events::FakeEventBridge::default();
    let published = publish("routes", &config, Some(&report), &bus).await;
    assert_eq!((published.events, published.failed, bus.calls()), (9, 0, 1));
    let details = bus.details();
    let replaced = details.iter().find(|d| d["change"].as_str().unwrap().starts_with('~')).unwrap();
    assert_eq!(
        *replaced,
        serde_json::json!({
            "job": "routes",
            "vpcId": VPC,
            "resource": "rtb-0a0000000000000a",
            "change": "~ 100.96.2.0/24 i-0old0000000000002 -> eni-0200000000000002",
            "from": "i-0old0000000000002",
            "to": "eni-0200000000000002",
            "reason": "mirrors rtb-0c0000000000000c",
            "invocationId": "inv-1",
        })
    );
    let deleted = details.iter().find(|d| d["change"].as_str().unwrap().starts_with('-')).unwrap();
    assert_eq!((deleted["from"].is_string(), &deleted["to"]), (true, &serde_json::Value::Null));
    assert_eq!(deleted["reason"], "not in rtb-0c0000000000000c");
    let per_table = |id: &str| details.iter().filter(|d| d["resource"] == id).count();
    assert_eq!(
        (per_table("rtb-0a0000000000000a"), per_table("rtb-0b0000000000000b"), per_table("rtb-0d0000000000000d")),
        (4, 3, 2)
    );
    let resources = &bus.entries()[0].resources;
    assert!(resources[0].starts_with("arn:aws:ec2:us-east-1:123456789012:route-table/rtb-0"), "{resources:?}");
}
