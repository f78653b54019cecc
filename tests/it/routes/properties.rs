//! Properties of the planner and the decoders, over random inputs.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use kube_rtsync::aws::ec2::model::{Destination, Route, RouteOrigin, RouteState, RouteTable, Target};
use kube_rtsync::fake::ec2::FakeEc2;
use kube_rtsync::jobs::routes::Reconciler;
use kube_rtsync::jobs::routes::config::{self, Config};
use kube_rtsync::jobs::routes::model::ManagedCidrs;
use kube_rtsync::jobs::routes::plan::{self, RouteAction};
use kube_rtsync::shared::event;
use kube_rtsync::shared::limiter::WriteLimiter;
use proptest::prelude::*;

const VPC: &str = "vpc-0a00000000000001";
const SOURCE: &str = "rtb-0c0000000000000c";

fn managed() -> ManagedCidrs {
    ManagedCidrs::new(vec!["100.96.0.0/11".parse().unwrap(), "fd00:100:96::/48".parse().unwrap()])
}

/// Destinations from a small pool, so that tables collide often: managed
/// IPv4 and IPv6 pod CIDRs, unmanaged CIDRs (including near misses such as
/// 100.128.x and a wider 100.64.0.0/10), and prefix lists.
fn destination() -> impl Strategy<Value = Destination> {
    prop_oneof![
        4 => (0u8..8).prop_map(|n| cidr(&format!("100.96.{n}.0/24"))),
        2 => (0u8..4).prop_map(|n| cidr(&format!("fd00:100:96:{n}::/64"))),
        1 => (0u8..3).prop_map(|n| cidr(&format!("100.128.{n}.0/24"))),
        1 => Just(cidr("100.64.0.0/10")),
        1 => Just(cidr("0.0.0.0/0")),
        1 => (0u8..3).prop_map(|n| cidr(&format!("fd00:200:{n}::/64"))),
        1 => (0u8..2).prop_map(|n| Destination::PrefixList(format!("pl-0{n}").into())),
    ]
}

fn cidr(s: &str) -> Destination {
    Destination::Cidr(s.parse::<IpNet>().unwrap())
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => (0u8..4).prop_map(|n| Target::Instance(format!("i-0{n}").into())),
        3 => (0u8..4).prop_map(|n| Target::NetworkInterface(format!("eni-0{n}").into())),
        1 => Just(Target::NatGateway("nat-01".into())),
        1 => Just(Target::Gateway("vgw-01".into())),
        1 => Just(Target::Gateway("local".into())),
        1 => Just(Target::Unknown),
    ]
}

fn route() -> impl Strategy<Value = Route> {
    let state = prop_oneof![4 => Just(RouteState::Active), 1 => Just(RouteState::Blackhole)];
    let origin = prop_oneof![
        6 => Just(RouteOrigin::CreateRoute),
        1 => Just(RouteOrigin::EnableVgwRoutePropagation),
        1 => Just(RouteOrigin::CreateRouteTable),
    ];
    (destination(), target(), state, origin).prop_map(|(destination, target, state, origin)| Route {
        destination,
        target,
        state,
        origin,
        instance_id: None,
    })
}

/// A table with at most one route per destination, as EC2 keeps them.
fn table(id: String) -> impl Strategy<Value = RouteTable> {
    proptest::collection::vec(route(), 0..14).prop_map(move |routes| {
        let unique: BTreeMap<Destination, Route> = routes.into_iter().map(|r| (r.destination.clone(), r)).collect();
        RouteTable { routes: unique.into_values().collect(), ..RouteTable::new(id.clone(), VPC) }
    })
}

fn world() -> impl Strategy<Value = (RouteTable, Vec<RouteTable>)> {
    let source = table(SOURCE.to_owned());
    let targets = (0usize..4).prop_flat_map(|n| (0..n).map(|k| table(format!("rtb-1{k:016}"))).collect::<Vec<_>>());
    (source, targets)
}

/// What EC2 holds after the actions: the independent model of the writes.
fn apply(table: &RouteTable, actions: &[RouteAction]) -> RouteTable {
    let mut out = table.clone();
    for action in actions {
        match action {
            RouteAction::Create { destination, target } => {
                assert!(out.route(destination).is_none(), "create of an existing route {destination}");
                out.routes.push(Route::active(destination.clone(), target.clone()));
            }
            RouteAction::Replace { destination, to, .. } => {
                let r =
                    out.routes.iter_mut().find(|r| &r.destination == destination).expect("replace of a missing route");
                r.target = to.clone();
                r.state = RouteState::Active;
            }
            RouteAction::Delete { destination, .. } => {
                let before = out.routes.len();
                out.routes.retain(|r| &r.destination != destination);
                assert_eq!(out.routes.len(), before - 1, "delete of a missing route {destination}");
            }
        }
    }
    out
}

/// The source seen independently of the planner: the routes to mirror
/// (active, static, managed, copyable), and the destinations the mirror must
/// leave alone (active, static, managed, but not copyable).
/// The contract's rule 1, stated again: a static route inside the CIDRs is
/// kube-rtsync's only when it goes to an instance or a network interface, or
/// is a blackhole; through any gateway it is an operator's.
fn through_gateway(r: &Route) -> bool {
    r.state != RouteState::Blackhole
        && !matches!(r.target, Target::Instance(_) | Target::NetworkInterface(_) | Target::Unknown)
}

fn expected(source: &RouteTable) -> (BTreeMap<Destination, Target>, BTreeSet<Destination>) {
    let mut wanted = BTreeMap::new();
    let mut alone = BTreeSet::new();
    for r in &source.routes {
        if r.origin != RouteOrigin::CreateRoute || r.state != RouteState::Active || !managed().contains(&r.destination)
        {
            continue;
        }
        if r.target.is_copyable() && !through_gateway(r) {
            wanted.insert(r.destination.clone(), r.target.clone());
        } else {
            alone.insert(r.destination.clone());
        }
    }
    (wanted, alone)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_plan_touches_only_managed_static_routes_of_targets((source, targets) in world()) {
        let desired = plan::desired_routes(&source, &managed());
        let plan = plan::plan(&desired, &targets, &managed());
        for tp in &plan.tables {
            prop_assert_ne!(&tp.route_table_id, SOURCE);
            let table = targets.iter().find(|t| t.id == tp.route_table_id).unwrap();
            let mut seen = BTreeSet::new();
            for action in &tp.actions {
                prop_assert!(managed().contains(action.destination()), "{action} is unmanaged");
                prop_assert!(seen.insert(action.destination().clone()), "two actions on {}", action.destination());
                if let Some(existing) = table.route(action.destination()) {
                    prop_assert_eq!(&existing.origin, &RouteOrigin::CreateRoute, "{} touches a non-static route", action);
                }
            }
        }
    }

    #[test]
    fn applying_the_plan_yields_the_mirror_and_replanning_is_empty((source, targets) in world()) {
        let desired = plan::desired_routes(&source, &managed());
        let plan = plan::plan(&desired, &targets, &managed());
        let (wanted, alone) = expected(&source);
        let mut applied = Vec::new();
        for tp in &plan.tables {
            let before = targets.iter().find(|t| t.id == tp.route_table_id).unwrap();
            let after = apply(before, &tp.actions);
            // Unmanaged and non-static routes are exactly as they were.
            let untouched = |t: &RouteTable| -> Vec<Route> {
                t.routes.iter().filter(|r| !managed().manages(r)).cloned().collect()
            };
            prop_assert_eq!(untouched(&after), untouched(before));
            // Held destinations: a non-static route on them blocks the mirror.
            let blocked: BTreeSet<Destination> = before.routes.iter()
                .filter(|r| r.origin != RouteOrigin::CreateRoute || through_gateway(r)).map(|r| r.destination.clone()).collect();
            for r in after.routes.iter().filter(|r| managed().manages(r)) {
                if alone.contains(&r.destination) {
                    prop_assert_eq!(before.route(&r.destination), Some(r), "a left-alone route changed");
                } else {
                    prop_assert_eq!(wanted.get(&r.destination), Some(&r.target), "{} is not in the source", r.destination);
                    prop_assert_eq!(r.state, RouteState::Active);
                }
            }
            for (destination, target) in &wanted {
                if !blocked.contains(destination) {
                    let r = after.route(destination);
                    prop_assert_eq!(r.map(|r| &r.target), Some(target), "{} missing", destination);
                }
            }
            applied.push(after);
        }
        let again = plan::plan(&desired, &applied, &managed());
        prop_assert!(again.is_empty(), "re-planning gave:\n{}", again);
    }

    #[test]
    fn the_plan_is_minimal((source, targets) in world()) {
        let desired = plan::desired_routes(&source, &managed());
        let plan = plan::plan(&desired, &targets, &managed());
        let (wanted, alone) = expected(&source);
        for tp in &plan.tables {
            let table = targets.iter().find(|t| t.id == tp.route_table_id).unwrap();
            // Each destination that differs needs exactly one write; no other
            // does.
            let mut needed = 0;
            let destinations: BTreeSet<&Destination> = table.routes.iter().map(|r| &r.destination).chain(wanted.keys()).collect();
            for d in destinations {
                if !managed().contains(d) || alone.contains(d) {
                    continue;
                }
                match (table.route(d), wanted.get(d)) {
                    (Some(r), _) if r.origin != RouteOrigin::CreateRoute || through_gateway(r) => {}
                    (Some(r), Some(t)) => needed += usize::from(&r.target != t || r.state != RouteState::Active),
                    (Some(_), None) | (None, Some(_)) => needed += 1,
                    (None, None) => {}
                }
            }
            prop_assert_eq!(tp.actions.len(), needed);
        }
    }

    #[test]
    fn the_reconciler_converges_in_one_pass_on_the_fake((source, targets) in world()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut tagged = source.clone();
        tagged.tags.insert("KubernetesCluster".into(), "k".into());
        let mut tables = targets.clone();
        for t in &mut tables {
            t.tags.insert("Name".into(), "private".into());
        }
        let fake = FakeEc2::new(std::iter::once(tagged.clone()).chain(tables.iter().cloned()));
        let vars: BTreeMap<&str, &str> = [
            (config::VPC_ID, VPC),
            (config::KUBE_CLUSTER_NAME, "k"),
            (config::KUBE_ROUTE_CIDRS, "100.96.0.0/11,fd00:100:96::/48"),
            (config::PRIVATE_RT_FILTERS, r#"[{"Name":"tag:Name","Values":["private"]}]"#),
            (config::ALLOW_EMPTY_SOURCE, "true"),
            (config::ROUTE_TABLE_LIMIT, "1000"),
        ].into();
        let config = Config::from_lookup(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        let limiter = WriteLimiter::new(config.write_rate);
        let reconciler = Reconciler { ec2: &fake, config: &config, limiter: &limiter, deadline: None };
        let first = runtime.block_on(reconciler.reconcile(vec![])).unwrap();
        prop_assert!(first.is_complete());
        prop_assert_eq!(fake.table(SOURCE), Some(tagged));
        fake.reset_counters();
        let second = runtime.block_on(reconciler.reconcile(vec![])).unwrap();
        prop_assert_eq!(fake.calls().writes(), 0, "second pass wrote: {:?}", second);
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = event::decode_bytes(&bytes);
    }

    #[test]
    fn decoding_random_json_never_panics(value in json()) {
        let _ = event::decode(&value);
        // Also as an SNS message and as an EventBridge detail.
        let mut sns: serde_json::Value = serde_json::from_str(include_str!("../../../events/sns-launch.json")).unwrap();
        sns["Records"][0]["Sns"]["Message"] = serde_json::Value::String(value.to_string());
        let _ = event::decode(&sns);
        let mut eb: serde_json::Value = serde_json::from_str(include_str!("../../../events/eventbridge-instance-running.json")).unwrap();
        eb["detail"] = value;
        let _ = event::decode(&eb);
    }

    #[test]
    fn random_configuration_values_never_panic(
        values in proptest::collection::vec(proptest::option::of("\\PC{0,40}"), 11)
    ) {
        let names = [
            config::VPC_ID, config::KUBE_CLUSTER_NAME, config::SOURCE_ROUTE_TABLE_ID, config::KUBE_ROUTE_CIDRS,
            config::PRIVATE_RT_FILTERS, config::DRY_RUN, config::MAX_WRITES_PER_SECOND, config::WRITE_BURST,
            config::ALLOW_EMPTY_SOURCE, config::ROUTE_TABLE_LIMIT, config::APPLY_CONCURRENCY,
        ];
        let vars: BTreeMap<&str, Option<String>> = names.into_iter().zip(values).collect();
        match Config::from_lookup(|n| vars.get(n).cloned().flatten()) {
            Ok(c) => prop_assert!(!c.vpc_id.is_empty()),
            Err(e) => prop_assert!(names.contains(&e.variable)),
        }
    }
}

/// Arbitrary JSON, a few levels deep, biased towards the keys the decoders look
/// for.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("Records".to_owned()),
        Just("Sns".to_owned()),
        Just("Message".to_owned()),
        Just("Event".to_owned()),
        Just("AutoScalingGroupName".to_owned()),
        Just("detail-type".to_owned()),
        Just("source".to_owned()),
        Just("detail".to_owned()),
        Just("instance-id".to_owned()),
        Just("state".to_owned()),
        "[a-z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        prop_oneof![
            Just("aws.ec2".to_owned()),
            Just("aws.events".to_owned()),
            Just("autoscaling:EC2_INSTANCE_LAUNCH".to_owned()),
            Just("EC2 Instance State-change Notification".to_owned()),
            "\\PC{0,20}",
        ]
        .prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
