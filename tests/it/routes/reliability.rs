//! Reliability under faults, races and throttling, against the in-memory
//! EC2: every scenario must converge to the mirror within a stated number of
//! invocations, without ever touching a route kube-rtsync does not manage.

use crate::support::*;
use kube_rtsync::aws::ec2::model::RouteTable;
use kube_rtsync::fake::ec2::{FakeEc2, Fault, Operation};
use kube_rtsync::jobs::routes::Error;
use kube_rtsync::jobs::routes::Reconciler;
use kube_rtsync::jobs::routes::config::{Config, WriteRate};
use kube_rtsync::jobs::routes::report::{Outcome, Report};
use kube_rtsync::shared::job::handle_event;
use kube_rtsync::shared::limiter::WriteLimiter;

async fn invoke(fake: &FakeEc2, config: &Config, limiter: &WriteLimiter) -> Result<Report, Error> {
    let reconciler = Reconciler { ec2: fake, config, limiter, deadline: None };
    handle_event(&reconciler, &event(LAUNCH)).await
}

fn no_limit() -> WriteLimiter {
    WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 })
}

/// Invokes until an invocation succeeds; returns how many it took. After
/// every invocation, no unmanaged route and no non-target table has changed.
async fn converge(fake: &FakeEc2, config: &Config, limit: usize) -> usize {
    let before = vpc();
    let limiter = no_limit();
    for n in 1..=limit {
        let result = invoke(fake, config, &limiter).await;
        assert_untouched(fake, &before);
        match result {
            Ok(report) => {
                assert!(matches!(report.outcome, Outcome::Synced | Outcome::InSync));
                assert_mirror_of_pods(fake);
                return n;
            }
            // A write failed (the report says which), or the describe did
            // (nothing was written): either way Lambda retries.
            Err(Error::Incomplete(_) | Error::Describe(_)) => continue,
            Err(other) => panic!("invocation {n} failed: {other}"),
        }
    }
    panic!("no convergence within {limit} invocations");
}

fn managed(dest: &kube_rtsync::aws::ec2::model::Destination) -> bool {
    dest.cidr().is_some_and(|n| "100.96.0.0/11".parse::<ipnet::IpNet>().unwrap().contains(&n))
}

fn assert_untouched(fake: &FakeEc2, before: &[RouteTable]) {
    for original in before {
        let now = fake.table(&original.id).unwrap();
        if PRIVATE.contains(&original.id.as_str()) {
            let keep =
                |t: &RouteTable| t.routes.iter().filter(|r| !managed(&r.destination)).cloned().collect::<Vec<_>>();
            assert_eq!(keep(&now), keep(original), "{}: an unmanaged route changed", original.id);
        } else {
            assert_eq!(&now, original, "{} is not a target but changed", original.id);
        }
    }
}

fn assert_mirror_of_pods(fake: &FakeEc2) {
    let mut wanted = pod_routes();
    wanted.sort_by(|a, b| a.destination.cmp(&b.destination));
    for id in PRIVATE {
        let mut got: Vec<_> = fake.table(id).unwrap().routes.into_iter().filter(|r| managed(&r.destination)).collect();
        got.sort_by(|a, b| a.destination.cmp(&b.destination));
        assert_eq!(got, wanted, "{id}");
    }
}

// The plan for vpc() is 9 writes: rtb-a 4 (delete, replace, 2 creates),
// rtb-b 3 creates, rtb-d 2 creates.

#[tokio::test]
async fn throttling_on_every_second_write_converges() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("RequestLimitExceeded").on_writes().every(2));
    // A throttled table stops for this invocation. Of two consecutive
    // writes one lands, so two invocations land at least one of the 9
    // planned writes: at most 18 invocations, whatever the interleaving.
    converge(&fake, &config(&[]), 18).await;
}

#[tokio::test]
async fn throttled_describes_and_writes_converge() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("RequestLimitExceeded").every(4));
    // Every fourth call of any kind is refused; a refused describe writes
    // nothing. (Every third would be a livelock artefact: once one write is
    // left, an invocation is exactly three calls and the refusal would hit
    // the same one forever.) With four, three of four calls go through and
    // the refused slot shifts by one call per invocation; 20 is generous.
    converge(&fake, &config(&[]), 20).await;
}

#[tokio::test]
async fn server_errors_on_every_third_write_converge_within_five_invocations() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("InternalError").on(Operation::CreateRoute).every(3));
    fake.inject(Fault::code("Unavailable").on(Operation::ReplaceRoute).every(3));
    fake.inject(Fault::code("InternalError").on(Operation::DeleteRoute).every(3));
    // A 5xx does not stop the rest of a table, and at most a third of each
    // kind of write fails per pass: 9 writes leave at most 3, then 1, and a
    // lone write cannot fail twice in a row (9 -> 3 -> 1 -> 1 -> 0).
    converge(&fake, &config(&[]), 5).await;
}

#[tokio::test]
async fn timeouts_converge_once_the_network_recovers() {
    let fake = FakeEc2::new(vpc());
    // The first four writes time out; the table goes on after a timeout, so
    // the first pass lands the other five and the second the rest.
    fake.inject(Fault::timeout().on_writes().times(4));
    assert_eq!(converge(&fake, &config(&[]), 2).await, 2);
}

#[tokio::test]
async fn a_table_that_keeps_failing_does_not_hold_the_others_back() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("UnauthorizedOperation").on_table("rtb-0b0000000000000b").times(3));
    let limiter = no_limit();
    let config = config(&[]);
    for _ in 0..3 {
        let Err(Error::Incomplete(report)) = invoke(&fake, &config, &limiter).await else {
            panic!("expected an incomplete sync while the table fails")
        };
        assert_eq!(report.totals.tables_failed, 1);
        for id in ["rtb-0a0000000000000a", "rtb-0d0000000000000d"] {
            assert!(report.tables.iter().find(|t| t.route_table_id == id).unwrap().is_complete());
        }
    }
    assert_eq!(converge(&fake, &config, 1).await, 1);
}

#[tokio::test]
async fn a_describe_failure_writes_nothing_and_the_retry_converges() {
    let fake = FakeEc2::new(vpc());
    fake.inject(Fault::code("InternalError").on(Operation::DescribeRouteTables).times(1));
    let err = invoke(&fake, &config(&[]), &no_limit()).await.unwrap_err();
    assert!(matches!(err, Error::Describe(_)));
    assert_eq!(fake.calls().writes(), 0);
    assert_eq!(converge(&fake, &config(&[]), 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_invocations_end_in_the_mirror_without_errors() {
    for _ in 0..20 {
        let fake = FakeEc2::new(vpc());
        let config = config(&[]);
        let (limiter_a, limiter_b) = (no_limit(), no_limit());
        let (a, b) = tokio::join!(invoke(&fake, &config, &limiter_a), invoke(&fake, &config, &limiter_b));
        a.unwrap();
        b.unwrap();
        assert_untouched(&fake, &vpc());
        assert_mirror_of_pods(&fake);
        // Whatever the interleaving, a third run has nothing left to do.
        fake.reset_counters();
        invoke(&fake, &config, &no_limit()).await.unwrap();
        assert_eq!(fake.calls().writes(), 0);
    }
}

/// 24 private tables, each missing the 5 pod routes: a 120-write resync.
fn big_vpc() -> Vec<RouteTable> {
    let mut source = vec![local("10.0.0.0/16")];
    source.extend((1..=5).map(|n| route(&format!("100.96.{n}.0/24"), i(&format!("i-0{n:016}")))));
    let mut tables = vec![table("rtb-0c0000000000000c", "cluster", source).with_tag("KubernetesCluster", CLUSTER)];
    tables.extend((0..24).map(|n| table(&format!("rtb-1{n:016x}"), &format!("private_{n}"), untouchable("nat-0a"))));
    tables
}

// Paused time: the limiter and the modelled EC2 bucket share tokio's clock,
// so the schedule is exact and the test takes no wall-clock time.
#[tokio::test(start_paused = true)]
async fn a_resync_paced_like_ec2_is_not_throttled() {
    // EC2's mutating bucket: 50 requests, refilled at 5 per second.
    let fake = FakeEc2::new(big_vpc()).with_write_bucket(50, 5.0);
    let config = config(&[("MAX_WRITES_PER_SECOND", "5"), ("WRITE_BURST", "50")]);
    let limiter = WriteLimiter::new(config.write_rate);
    let start = tokio::time::Instant::now();
    let report = invoke(&fake, &config, &limiter).await.unwrap();
    assert_eq!(report.totals.created, 120);
    assert!(fake.rejected_by_bucket() <= 2, "{} writes rejected", fake.rejected_by_bucket());
    // 50 at once, then 70 at 5/s.
    assert_eq!(start.elapsed().as_secs(), 14);
}

#[tokio::test(start_paused = true)]
async fn the_same_resync_unpaced_is_throttled_by_ec2() {
    // The control for the test above: without the limiter the bucket bites.
    let fake = FakeEc2::new(big_vpc()).with_write_bucket(50, 5.0);
    let config = config(&[("MAX_WRITES_PER_SECOND", "0")]);
    let result = invoke(&fake, &config, &no_limit()).await;
    assert!(matches!(result, Err(Error::Incomplete(_))));
    assert!(fake.rejected_by_bucket() > 2);
}

#[tokio::test]
async fn a_full_table_deletes_before_it_creates() {
    // rtb-a holds 49 routes under a quota of 50 and needs one delete and two
    // creates: it ends at 50, but only if the delete lands first.
    let mut tables = vpc();
    let a = tables.iter_mut().find(|t| t.id == "rtb-0a0000000000000a").unwrap();
    let mut n = 0;
    while a.routes.len() < 49 {
        a.routes.push(route(&format!("10.{}.{}.0/24", 100 + n / 250, n % 250), i("i-0other00000000001")));
        n += 1;
    }
    // An account that kept the old quota of 50, and says so.
    let fake = FakeEc2::new(tables).with_route_limit(50);
    let report = invoke(&fake, &config(&[("ROUTE_TABLE_LIMIT", "50")]), &no_limit()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Synced);
    assert_mirror_of_pods(&fake);
    assert_eq!(fake.table("rtb-0a0000000000000a").unwrap().routes.len(), 49 - 1 + 2);
}

#[tokio::test(start_paused = true)]
async fn a_shared_bucket_teaches_the_pace_and_rejections_stay_few() {
    // EC2's bucket (50, refilled at 5/s) is shared with the cluster's route
    // controller, taking 1.5/s of it; kube-rtsync is told 5/s with a burst
    // of 50. A fixed pace is refused every few writes once the burst is
    // spent; after a refusal the pace halves and comes back slowly.
    let fake = FakeEc2::new(big_vpc()).with_write_bucket(50, 5.0).with_other_writer(1.5);
    let config = config(&[("MAX_WRITES_PER_SECOND", "5"), ("WRITE_BURST", "50")]);
    let limiter = WriteLimiter::new(config.write_rate);
    let mut invocations = 0;
    loop {
        invocations += 1;
        match invoke(&fake, &config, &limiter).await {
            Ok(_) => break,
            Err(Error::Incomplete(_)) if invocations < 10 => continue,
            Err(other) => panic!("{other}"),
        }
    }
    // Measured with the pace fixed instead (the same scenario): 30 writes
    // rejected over 4 invocations.
    let rejected = fake.rejected_by_bucket();
    assert!(rejected <= 2, "{rejected} writes rejected in {invocations} invocations");
    assert!(invocations <= 2, "{invocations} invocations");
}
