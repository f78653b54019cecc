//! The change events' publisher, shared by every job: ten entries to a
//! call, the deadline, failures counted and never raised.

use kube_rtsync::fake::events::FakeEventBridge;
use kube_rtsync::shared::changes::{Change, Published, Publisher};
use tokio::time::{Duration, Instant};

fn changes(n: usize) -> Vec<Change> {
    (0..n)
        .map(|k| Change {
            resource: format!("rtb-{k:04}"),
            arns: vec![],
            change: format!("+ 100.96.{k}.0/24 -> i-1"),
            from: None,
            to: Some("i-1".into()),
            reason: "test".into(),
        })
        .collect()
}

fn publisher(bus: &FakeEventBridge, deadline: Option<Instant>) -> Publisher<'_, FakeEventBridge> {
    Publisher { bus, bus_name: "ops", job: "routes", vpc_id: "vpc-1", invocation_id: "inv-1", deadline }
}

#[tokio::test]
async fn changes_go_ten_to_a_call_and_every_one_arrives_once() {
    let bus = FakeEventBridge::default();
    let published = publisher(&bus, None).publish(&changes(25)).await;
    assert_eq!(published, Published { events: 25, failed: 0 });
    assert_eq!(bus.calls(), 3);
    let mut resources: Vec<String> = bus.details().iter().map(|d| d["resource"].as_str().unwrap().to_owned()).collect();
    resources.sort();
    assert_eq!(resources, (0..25).map(|k| format!("rtb-{k:04}")).collect::<Vec<_>>());
    assert!(bus.entries().iter().all(|e| e.bus == "ops"));
}

#[tokio::test]
async fn no_change_no_call() {
    let bus = FakeEventBridge::default();
    assert_eq!(publisher(&bus, None).publish(&[]).await, Published::default());
    assert_eq!(bus.calls(), 0);
}

#[tokio::test]
async fn one_failed_call_costs_its_own_entries_only() {
    let bus = FakeEventBridge::default();
    bus.fail("ThrottlingException", 1);
    let published = publisher(&bus, None).publish(&changes(25)).await;
    assert_eq!(published.events + published.failed, 25);
    assert!(published.failed == 10 || published.failed == 5, "{published:?}");
    assert_eq!(bus.entries().len(), published.events);
}

#[tokio::test]
async fn no_call_starts_when_the_deadline_is_near_and_the_events_count_as_failed() {
    let bus = FakeEventBridge::default();
    let published = publisher(&bus, Some(Instant::now() + Duration::from_millis(500))).publish(&changes(3)).await;
    assert_eq!(published, Published { events: 0, failed: 3 });
    assert_eq!(bus.calls(), 0);
    let published = publisher(&bus, Some(Instant::now() + Duration::from_secs(60))).publish(&changes(3)).await;
    assert_eq!(published, Published { events: 3, failed: 0 });
}
