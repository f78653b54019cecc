//! Properties of the egress planner over random tables, NATs, health, failback
//! clocks and settings.

use kube_rtsync::aws::ec2::model::Leaving;
use kube_rtsync::jobs::egress::health::evaluate;
use kube_rtsync::jobs::egress::model::{
    DefaultRoute, EgressTable, Nat, NatGatewayFacts, NatInstanceFacts, NatKind, NatTarget, ProbeResult, Settings,
    TableZone,
};
use kube_rtsync::jobs::egress::plan::{
    EgressPlan, Reason, RouteChange, TagChange, plan, source_dest_fixes, with_source_dest_fixed,
};
use proptest::prelude::*;

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const NOW: u64 = 1_700_000_000;

fn zone() -> impl Strategy<Value = String> {
    prop::sample::select(&ZONES[..]).prop_map(String::from)
}

fn status() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(
        &["ok", "ok", "ok", "ok", "impaired", "initializing", "insufficient-data"][..],
    ))
    .prop_map(|s| s.map(String::from))
}

/// A NAT with a placeholder id; `number` gives it its ids so that routes can
/// name it.
fn nat() -> impl Strategy<Value = Nat> {
    let instance = (
        prop::option::weighted(0.9, zone()),
        prop::sample::select(&["running", "running", "running", "running", "stopped", "pending"][..]),
        status(),
        status(),
        prop::option::weighted(0.9, prop::bool::weighted(0.2)),
        prop_oneof![4 => Just(Some(ProbeResult::Answered)), 1 => Just(Some(ProbeResult::Failed("timeout".into()))), 1 => Just(None)],
        0usize..3,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(zone, state, system_status, instance_status, source_dest_check, probe, enis, has_ip, leaving)| {
            let leaving = leaving.then_some(Leaving::SpotInterruption);
            let facts = NatInstanceFacts {
                state: state.into(),
                system_status,
                instance_status,
                source_dest_check,
                probe,
                leaving,
            };
            let eni_ids = vec![String::new(); enis];
            let private_ip = has_ip.then(|| "10.0.0.5".to_string());
            Nat { id: String::new(), zone, kind: NatKind::Instance { eni_ids, private_ip, facts } }
        });
    let gateway = (
        zone(),
        prop::bool::weighted(0.25),
        prop::sample::select(&["available", "available", "available", "pending", "deleted", "failed"][..]),
    )
        .prop_map(|(zone, regional, state)| {
            let facts = NatGatewayFacts { state: state.into() };
            Nat { id: String::new(), zone: (!regional).then_some(zone), kind: NatKind::Gateway { regional, facts } }
        });
    prop_oneof![3 => instance, 2 => gateway]
}

fn number(n: usize, mut nat: Nat) -> Nat {
    match &mut nat.kind {
        NatKind::Instance { eni_ids, .. } => {
            nat.id = format!("i-{n}");
            for (k, eni) in eni_ids.iter_mut().enumerate() {
                *eni = format!("eni-{n}-{k}");
            }
        }
        NatKind::Gateway { .. } => nat.id = format!("nat-{n}"),
    }
    nat
}

/// Routes name NATs that may or may not exist (a number beyond the NATs,
/// another kind, a missing interface), as well as non-NAT targets.
fn route() -> impl Strategy<Value = DefaultRoute> {
    let target = prop_oneof![
        (0..4usize).prop_map(|k| format!("i-{k}")),
        (0..4usize, 0..3usize).prop_map(|(k, j)| format!("eni-{k}-{j}")),
        (0..4usize).prop_map(|k| format!("nat-{k}")),
    ];
    prop_oneof![
        1 => Just(DefaultRoute::Missing),
        2 => (0..4usize).prop_map(|k| DefaultRoute::Instance(format!("i-{k}"))),
        4 => (0..4usize, 0..3usize).prop_map(|(k, j)| DefaultRoute::NetworkInterface(format!("eni-{k}-{j}"))),
        3 => (0..4usize).prop_map(|k| DefaultRoute::NatGateway(format!("nat-{k}"))),
        1 => Just(DefaultRoute::Other { kind: "igw".into(), id: "igw-1".into() }),
        1 => Just(DefaultRoute::Other { kind: "blackholed transit gateway".into(), id: "tgw-1".into() }),
        1 => target.prop_map(DefaultRoute::Blackhole),
    ]
}

fn table_zone() -> impl Strategy<Value = TableZone> {
    prop_oneof![
        8 => zone().prop_map(TableZone::Zone),
        1 => Just(TableZone::None),
        1 => Just(TableZone::Several(vec![ZONES[0].into(), ZONES[1].into()])),
    ]
}

fn tables() -> impl Strategy<Value = Vec<EgressTable>> {
    let clock = prop::option::of(NOW - 2000..NOW + 100);
    prop::collection::vec((table_zone(), route(), clock), 0..10).prop_map(|tables| {
        let table = |(i, (zone, default_route, home_healthy_since))| EgressTable {
            id: format!("rtb-{i}"),
            name: None,
            zone,
            default_route,
            home_healthy_since,
        };
        tables.into_iter().enumerate().map(table).collect()
    })
}

fn nats() -> impl Strategy<Value = Vec<Nat>> {
    prop::collection::vec(nat(), 0..6)
        .prop_map(|nats| nats.into_iter().enumerate().map(|(n, nat)| number(n, nat)).collect())
}

fn settings() -> impl Strategy<Value = Settings> {
    (prop_oneof![Just(0u64), Just(60), Just(300), 0..3000u64], any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(failback_seconds, fix_source_dest_check, probe_enabled, regional_fallback)| Settings {
            failback_seconds,
            fix_source_dest_check,
            probe_enabled,
            regional_fallback,
        },
    )
}

/// Resolved here from the ids alone, not with the crate's matching, so that the
/// properties check it too.
fn nat_behind<'a>(route: &DefaultRoute, nats: &'a [Nat]) -> Option<&'a Nat> {
    nats.iter().find(|nat| match (route, &nat.kind) {
        (DefaultRoute::Instance(id), NatKind::Instance { .. }) => *id == nat.id,
        (DefaultRoute::NetworkInterface(eni), NatKind::Instance { eni_ids, .. }) => eni_ids.contains(eni),
        (DefaultRoute::NatGateway(id), NatKind::Gateway { .. }) => *id == nat.id,
        _ => false,
    })
}

/// A next hop that is not ours (rule 4): anything but a NAT, or an active route
/// through an instance, interface or NAT gateway that is not enrolled. A
/// missing route and a blackhole through one of those three are this job's.
fn next_hop_is_not_ours(route: &DefaultRoute, nats: &[Nat]) -> bool {
    match route {
        DefaultRoute::Missing | DefaultRoute::Blackhole(_) => false,
        DefaultRoute::Other { .. } => true,
        DefaultRoute::Instance(_) | DefaultRoute::NetworkInterface(_) | DefaultRoute::NatGateway(_) => {
            nat_behind(route, nats).is_none()
        }
    }
}

/// Rule 4; a table through a regional gateway is this job's only with the
/// fallback on (rule 1).
fn must_be_left_alone(table: &EgressTable, nats: &[Nat], settings: &Settings) -> bool {
    let through_regional = !settings.regional_fallback
        && nats.iter().any(|nat| nat.is_regional() && table.default_route.target_id() == Some(&nat.id));
    !matches!(table.zone, TableZone::Zone(_)) || next_hop_is_not_ours(&table.default_route, nats) || through_regional
}

/// Healthy, and not a regional gateway unless the fallback is on.
fn is_usable(nat: &Nat, settings: &Settings) -> bool {
    (settings.regional_fallback || !nat.is_regional()) && evaluate(nat, settings).is_healthy()
}

/// What a reconcile does, as the job runs it: the source/destination fixes
/// first (those at `failing` positions of the fix list fail), then the plan
/// with the facts the fixes left, then its routes and failback clocks.
fn reconcile(tables: &mut [EgressTable], nats: &mut [Nat], settings: &Settings, failing: &[bool]) -> EgressPlan {
    let fixes = source_dest_fixes(nats, settings);
    let made: Vec<&str> = fixes
        .iter()
        .enumerate()
        .filter(|(k, _)| !failing.get(*k).copied().unwrap_or(false))
        .map(|(_, id)| id.as_str())
        .collect();
    with_source_dest_fixed(nats, &made);
    let plan = plan(tables, nats, settings, NOW);
    apply(tables, &plan);
    plan
}

/// The plan's routes and failback clocks.
fn apply(tables: &mut [EgressTable], plan: &EgressPlan) {
    for table in tables {
        let decision = plan.tables.iter().find(|d| d.table_id == table.id).expect("every table is in the plan");
        if let Some(RouteChange::Create { nat: target } | RouteChange::Replace { to: target, .. }) =
            &decision.route_change
        {
            table.default_route = target.into();
        }
        match decision.tag_change {
            Some(TagChange::Set(since)) => table.home_healthy_since = Some(since),
            Some(TagChange::Clear) => table.home_healthy_since = None,
            None => {}
        }
    }
}

proptest! {
    // Failures print their minimal case; nothing is written next to the
    // sources.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_table_left_alone_is_never_changed(tables in tables(), nats in nats(), settings in settings()) {
        let plan = plan(&tables, &nats, &settings, NOW);
        prop_assert_eq!(plan.tables.len(), tables.len());
        for table in tables.iter().filter(|t| must_be_left_alone(t, &nats, &settings)) {
            let decision = plan.tables.iter().find(|d| d.table_id == table.id).unwrap();
            prop_assert!(matches!(decision.reason, Reason::LeftAlone(_)), "{}", decision);
            prop_assert_eq!(&decision.route_change, &None);
            prop_assert_eq!(decision.tag_change, None);
        }
    }

    #[test]
    fn every_route_change_names_a_healthy_zonal_nat(tables in tables(), nats in nats(), settings in settings()) {
        let plan = plan(&tables, &nats, &settings, NOW);
        for (table_id, change) in plan.route_changes() {
            let (RouteChange::Create { nat: target } | RouteChange::Replace { to: target, .. }) = change;
            let nat = nats.iter().find(|nat| match (target, nat.eni_ids().first()) {
                (NatTarget::NetworkInterface(eni), Some(primary)) => eni == primary,
                (NatTarget::Instance(id), None) => *id == nat.id && matches!(nat.kind, NatKind::Instance { .. }),
                (NatTarget::NatGateway(id), _) => *id == nat.id && matches!(nat.kind, NatKind::Gateway { .. }),
                _ => false,
            });
            prop_assert!(nat.is_some_and(|nat| is_usable(nat, &settings)), "{}: {:?}\n{}", table_id, change, plan);
        }
    }

    #[test]
    fn planning_again_after_applying_the_plan_changes_nothing(
        mut tables in tables(), mut nats in nats(), settings in settings()
    ) {
        let first = reconcile(&mut tables, &mut nats, &settings, &[]);
        let second = plan(&tables, &nats, &settings, NOW);
        prop_assert!(second.is_empty(), "first:\n{}second:\n{}", first, second);
    }

    #[test]
    fn no_plan_writes_a_table_whose_next_hop_is_not_an_enrolled_nat(
        tables in tables(), nats in nats(), settings in settings()
    ) {
        let plan = plan(&tables, &nats, &settings, NOW);
        for table in tables.iter().filter(|t| next_hop_is_not_ours(&t.default_route, &nats)) {
            let decision = plan.tables.iter().find(|d| d.table_id == table.id).unwrap();
            prop_assert_eq!(&decision.route_change, &None, "{}: {:?}\n{}", table.id, table.default_route, plan);
            prop_assert_eq!(decision.tag_change, None, "{}", decision);
            prop_assert!(matches!(decision.reason, Reason::LeftAlone(_)), "{}", decision);
        }
    }

    #[test]
    fn no_table_is_routed_to_an_instance_whose_source_dest_fix_failed(
        mut tables in tables(), mut nats in nats(), settings in settings(), failing in prop::collection::vec(any::<bool>(), 6)
    ) {
        let plan = reconcile(&mut tables, &mut nats, &settings, &failing);
        for (table_id, change) in plan.route_changes() {
            let (RouteChange::Create { nat: target } | RouteChange::Replace { to: target, .. }) = change;
            let nat = nat_behind(&target.into(), &nats).expect("a route change names a NAT");
            if let NatKind::Instance { facts, .. } = &nat.kind {
                prop_assert_ne!(facts.source_dest_check, Some(true), "{} routed to {} whose check is on\n{}", table_id, nat.id, plan);
            }
        }
    }

    #[test]
    fn every_table_not_left_alone_ends_on_a_healthy_zonal_nat_when_there_is_one_else_nothing_changes(
        mut tables in tables(), mut nats in nats(), settings in settings()
    ) {
        let left_alone: Vec<bool> = tables.iter().map(|t| must_be_left_alone(t, &nats, &settings)).collect();
        let before = tables.clone();
        let plan = reconcile(&mut tables, &mut nats, &settings, &[]);
        let any_usable = nats.iter().any(|nat| is_usable(nat, &settings));
        for ((table, was), _) in tables.iter().zip(&before).zip(left_alone).filter(|(_, alone)| !alone) {
            if any_usable {
                let nat = nat_behind(&table.default_route, &nats);
                prop_assert!(nat.is_some_and(|nat| is_usable(nat, &settings)), "{}: {:?}\n{}", table.id, table.default_route, plan);
            } else {
                prop_assert_eq!(&table.default_route, &was.default_route);
                prop_assert_eq!(plan.without_healthy_nat(), plan.tables.len() - plan.left_alone());
            }
        }
    }

    #[test]
    fn no_table_is_ever_routed_to_a_leaving_nat(
        mut tables in tables(), mut nats in nats(), settings in settings()
    ) {
        let plan = reconcile(&mut tables, &mut nats, &settings, &[]);
        for (table_id, change) in plan.route_changes() {
            let (RouteChange::Create { nat: target } | RouteChange::Replace { to: target, .. }) = change;
            let nat = nat_behind(&target.into(), &nats).expect("a route change names a NAT");
            if let NatKind::Instance { facts, .. } = &nat.kind {
                prop_assert_eq!(&facts.leaving, &None, "{} routed to leaving {}\n{}", table_id, nat.id, plan);
            }
        }
        for decision in &plan.tables {
            let chosen = decision.chosen.as_ref().and_then(|c| nats.iter().find(|n| n.id == c.nat));
            let leaving = chosen.is_some_and(|n| matches!(&n.kind, NatKind::Instance { facts, .. } if facts.leaving.is_some()));
            prop_assert!(!leaving, "{} ends on a leaving NAT\n{}", decision.table_id, plan);
        }
    }

    #[test]
    fn with_the_fallback_a_dark_zone_never_ends_on_another_zone_s_nat_while_a_regional_one_is_available(
        mut tables in tables(), mut nats in nats(), settings in settings()
    ) {
        let settings = Settings { regional_fallback: true, ..settings };
        let before = tables.clone();
        let plan = reconcile(&mut tables, &mut nats, &settings, &[]);
        let regional_available = nats.iter().any(|n| n.is_regional() && is_usable(n, &settings));
        for (table, was) in tables.iter().zip(&before) {
            let TableZone::Zone(zone) = &table.zone else { continue };
            if must_be_left_alone(was, &nats, &settings) {
                continue;
            }
            let zone_dark = !nats.iter().any(|n| !n.is_regional() && n.zone.as_deref() == Some(zone) && is_usable(n, &settings));
            let Some(end) = nat_behind(&table.default_route, &nats) else { continue };
            if zone_dark && regional_available {
                prop_assert!(end.is_regional(), "{} ({}) ends on {} of zone {:?}\n{}", table.id, zone, end.id, end.zone, plan);
            }
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_the_order_of_its_inputs(tables in tables(), nats in nats(), settings in settings()) {
        let forward = plan(&tables, &nats, &settings, NOW);
        let mut reversed_tables = tables.clone();
        reversed_tables.reverse();
        let mut reversed_nats = nats.clone();
        reversed_nats.reverse();
        let backward = plan(&reversed_tables, &reversed_nats, &settings, NOW);
        prop_assert_eq!(forward.tables, backward.tables);
        prop_assert_eq!(forward.source_dest_fixes, backward.source_dest_fixes);
    }
}
