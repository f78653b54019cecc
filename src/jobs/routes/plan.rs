//! The pure planner: from the source's routes and the target tables to an
//! ordered list of route changes per table. No I/O, nothing async.
//!
//! The plan only ever names routes inside the managed CIDRs whose origin is
//! `CreateRoute`, in tables other than the source. Everything else in a
//! table is invisible to it.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::fmt;

use serde::Serialize;

use super::model::ManagedCidrs;
use crate::aws::ec2::model::{Destination, RouteOrigin, RouteState, RouteTable, Target};

/// The routes every target table should have: the source's managed routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredRoutes {
    /// Destination to target, for every active, copyable managed route of the
    /// source.
    pub routes: BTreeMap<Destination, Target>,
    /// Managed routes of the source that cannot be copied. Target tables
    /// keep whatever they have for these destinations.
    pub skipped: Vec<SkippedRoute>,
}

impl DesiredRoutes {
    /// Managed routes the source has, copyable or not.
    pub fn managed_count(&self) -> usize {
        self.routes.len() + self.skipped.len()
    }
}

/// A route kube-rtsync saw but deliberately left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedRoute {
    pub route_table_id: String,
    pub destination: Destination,
    pub target: Target,
    pub reason: String,
}

/// The source's routes that target tables must mirror: those inside the
/// managed CIDRs, made with `CreateRoute`, and active. A blackhole in the
/// source is not desired (its node is gone), so mirrors of it are deleted.
pub fn desired_routes(source: &RouteTable, managed: &ManagedCidrs) -> DesiredRoutes {
    let mut desired = DesiredRoutes::default();
    for route in &source.routes {
        if managed.is_gateway_route(route) && route.state == RouteState::Active {
            desired.skipped.push(SkippedRoute {
                route_table_id: source.id.clone(),
                destination: route.destination.clone(),
                target: route.target.clone(),
                reason: GATEWAY_ROUTE.into(),
            });
            continue;
        }
        if !managed.manages(route) || route.state != RouteState::Active {
            continue;
        }
        if route.target.is_copyable() {
            desired.routes.insert(route.destination.clone(), route.target.clone());
        } else {
            desired.skipped.push(SkippedRoute {
                route_table_id: source.id.clone(),
                destination: route.destination.clone(),
                target: route.target.clone(),
                reason: "the source route's target cannot be copied with CreateRoute".into(),
            });
        }
    }
    desired
}

/// Why a route inside the managed CIDRs through a gateway is left alone.
pub const GATEWAY_ROUTE: &str =
    "the route goes through a gateway, not to an instance or a network interface; only pod routes are managed";

/// One change to one route of one table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RouteAction {
    /// The table lacks the route: `CreateRoute`.
    Create { destination: Destination, target: Target },
    /// The table routes the destination elsewhere (or into a blackhole):
    /// `ReplaceRoute`.
    Replace { destination: Destination, from: Target, to: Target },
    /// The source has no such route (or only a blackhole): `DeleteRoute`.
    Delete { destination: Destination, target: Target },
}

impl RouteAction {
    pub fn destination(&self) -> &Destination {
        match self {
            RouteAction::Create { destination, .. }
            | RouteAction::Replace { destination, .. }
            | RouteAction::Delete { destination, .. } => destination,
        }
    }

    /// The verb, as the report and the logs name it.
    pub fn verb(&self) -> &'static str {
        match self {
            RouteAction::Create { .. } => "create",
            RouteAction::Replace { .. } => "replace",
            RouteAction::Delete { .. } => "delete",
        }
    }

    /// Sort key: deletes first (they free room under the table's route
    /// quota), then replaces, then creates; each by destination.
    fn order(&self) -> (u8, &Destination) {
        let rank = match self {
            RouteAction::Delete { .. } => 0,
            RouteAction::Replace { .. } => 1,
            RouteAction::Create { .. } => 2,
        };
        (rank, self.destination())
    }
}

/// The changes planned for one target table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TablePlan {
    pub route_table_id: String,
    /// The table's `Name` tag, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Routes in the table before any change (for the route quota check).
    pub route_count: usize,
    pub actions: Vec<RouteAction>,
    /// Destinations the table holds with a route kube-rtsync must not touch.
    pub skipped: Vec<SkippedRoute>,
    /// Actions a guard held back, with the reason.
    pub withheld: Vec<WithheldAction>,
}

impl TablePlan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The table's route count once every planned action is applied.
    pub fn route_count_after(&self) -> usize {
        let created = self.actions.iter().filter(|a| matches!(a, RouteAction::Create { .. })).count();
        let deleted = self.actions.iter().filter(|a| matches!(a, RouteAction::Delete { .. })).count();
        self.route_count + created - deleted
    }
}

/// An action a guard held back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WithheldAction {
    #[serde(flatten)]
    pub action: RouteAction,
    pub reason: Guard,
}

/// Why an action was held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// The source has no managed route at all while targets still have some.
    EmptySource,
    /// Creating the routes would take the table past `ROUTE_TABLE_LIMIT`.
    RouteTableLimit,
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guard::EmptySource => {
                "the source has no managed route; deletes are withheld unless ALLOW_EMPTY_SOURCE=true"
            }
            Guard::RouteTableLimit => "the table would exceed ROUTE_TABLE_LIMIT; creates are withheld",
        })
    }
}

/// Limits the plan must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guards {
    pub allow_empty_source: bool,
    pub route_table_limit: usize,
}

/// The whole plan: one entry per target table, ordered by table id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    pub tables: Vec<TablePlan>,
}

impl RoutePlan {
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(TablePlan::is_empty)
    }

    pub fn action_count(&self) -> usize {
        self.tables.iter().map(|t| t.actions.len()).sum()
    }

    pub fn withheld_count(&self) -> usize {
        self.tables.iter().map(|t| t.withheld.len()).sum()
    }

    /// Holds back what the guards forbid:
    /// - every delete, when the source has no managed route at all and
    ///   `allow_empty_source` is off (a cluster being rebuilt, or the wrong
    ///   source table, must not wipe the mirrors);
    /// - a table's creates, when they would take it past the route limit
    ///   (reported up front instead of failing midway with
    ///   `RouteLimitExceeded`).
    pub fn guard(mut self, desired: &DesiredRoutes, guards: Guards) -> Self {
        let empty_source = desired.managed_count() == 0 && !guards.allow_empty_source;
        for table in &mut self.tables {
            if empty_source {
                hold_back(table, Guard::EmptySource, |a| matches!(a, RouteAction::Delete { .. }));
            }
            if table.route_count_after() > guards.route_table_limit {
                hold_back(table, Guard::RouteTableLimit, |a| matches!(a, RouteAction::Create { .. }));
            }
        }
        self
    }
}

fn hold_back(table: &mut TablePlan, reason: Guard, held: impl Fn(&RouteAction) -> bool) {
    let (withheld, kept): (Vec<_>, Vec<_>) = table.actions.drain(..).partition(|a| held(a));
    table.actions = kept;
    table.withheld.extend(withheld.into_iter().map(|action| WithheldAction { action, reason }));
}

/// Plans every target table. Tables come out ordered by id, actions as
/// [`RouteAction`] orders them, so equal inputs always give equal plans.
pub fn plan(desired: &DesiredRoutes, targets: &[RouteTable], managed: &ManagedCidrs) -> RoutePlan {
    let index = DesiredIndex::new(desired);
    let mut tables: Vec<TablePlan> = targets.iter().map(|t| plan_table(&index, t, managed)).collect();
    tables.sort_by(|a, b| a.route_table_id.cmp(&b.route_table_id));
    RoutePlan { tables }
}

/// The desired routes, indexed once for every table: a hash lookup per
/// route keeps 200 tables of 1,000 routes within a few milliseconds.
struct DesiredIndex<'a> {
    /// In destination order, so that creates come out sorted.
    entries: Vec<(&'a Destination, &'a Target)>,
    position: FxHashMap<&'a Destination, usize>,
    left_alone: FxHashSet<&'a Destination>,
}

impl<'a> DesiredIndex<'a> {
    fn new(desired: &'a DesiredRoutes) -> Self {
        let entries: Vec<(&Destination, &Target)> = desired.routes.iter().collect();
        let position = entries.iter().enumerate().map(|(i, (d, _))| (*d, i)).collect();
        let left_alone = desired.skipped.iter().map(|s| &s.destination).collect();
        DesiredIndex { entries, position, left_alone }
    }
}

fn plan_table(desired: &DesiredIndex<'_>, table: &RouteTable, managed: &ManagedCidrs) -> TablePlan {
    let mut actions = Vec::new();
    let mut skipped = Vec::new();
    // Which desired destinations the table already routes, in any way.
    let mut present = vec![false; desired.entries.len()];

    for route in &table.routes {
        // Every desired destination is managed, so a hit needs no
        // containment test; a miss that is unmanaged is not ours.
        let wanted = match desired.position.get(&route.destination) {
            Some(&i) => {
                present[i] = true;
                Some(desired.entries[i].1)
            }
            None if !managed.contains(&route.destination) => continue,
            None => None,
        };
        if route.origin != RouteOrigin::CreateRoute {
            // A propagated or table-made route sits on a destination we
            // would manage: never touch it, and say so if we wanted it.
            if let Some(target) = wanted {
                skipped.push(SkippedRoute {
                    route_table_id: table.id.clone(),
                    destination: route.destination.clone(),
                    target: target.clone(),
                    reason: format!("the table holds this destination with a route of origin {:?}", route.origin),
                });
            }
            continue;
        }
        if managed.is_gateway_route(route) {
            // An operator's route (to another cluster's pods through a
            // transit gateway, say): never replaced or deleted.
            skipped.push(SkippedRoute {
                route_table_id: table.id.clone(),
                destination: route.destination.clone(),
                target: route.target.clone(),
                reason: GATEWAY_ROUTE.into(),
            });
            continue;
        }
        match wanted {
            Some(target) if *target == route.target && route.state == RouteState::Active => {}
            Some(target) => actions.push(RouteAction::Replace {
                destination: route.destination.clone(),
                from: route.target.clone(),
                to: target.clone(),
            }),
            None if desired.left_alone.contains(&route.destination) => {}
            None => actions
                .push(RouteAction::Delete { destination: route.destination.clone(), target: route.target.clone() }),
        }
    }
    for (&(destination, target), _) in desired.entries.iter().zip(&present).filter(|(_, present)| !**present) {
        actions.push(RouteAction::Create { destination: destination.clone(), target: target.clone() });
    }
    actions.sort_by(|a, b| a.order().cmp(&b.order()));

    TablePlan {
        route_table_id: table.id.clone(),
        name: table.tags.get("Name").cloned(),
        route_count: table.routes.len(),
        actions,
        skipped,
        withheld: Vec::new(),
    }
}

impl fmt::Display for RouteAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteAction::Create { destination, target } => write!(f, "+ {destination} -> {target}"),
            RouteAction::Replace { destination, from, to } => write!(f, "~ {destination} {from} -> {to}"),
            RouteAction::Delete { destination, .. } => write!(f, "- {destination}"),
        }
    }
}

/// One line per action: `+ rtb-… 100.96.3.0/24 -> eni-…`,
/// `~ rtb-… 100.96.2.0/24 i-old -> i-new`, `- rtb-… 100.96.9.0/24`; then
/// what the guards held back (`? rtb-… 100.96.1.0/24 create -> i-…
/// withheld: …`) and what the table holds that is not ours to change
/// (`. rtb-… 100.96.1.0/24 skipped: …`), so that the logged plan shows
/// every decision.
impl fmt::Display for RoutePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in &self.tables {
            let id = &table.route_table_id;
            for action in &table.actions {
                let line = action.to_string();
                let (sign, rest) = line.split_at(1);
                writeln!(f, "{sign} {id}{rest}")?;
            }
            for held in &table.withheld {
                let line = held.action.to_string();
                let what = match &held.action {
                    RouteAction::Create { target, .. } => format!("create -> {target}"),
                    RouteAction::Replace { from, to, .. } => format!("replace {from} -> {to}"),
                    RouteAction::Delete { target, .. } => format!("delete {target}"),
                };
                let destination = held.action.destination();
                debug_assert!(line.contains(&destination.to_string()));
                writeln!(f, "? {id} {destination} {what} withheld: {}", held.reason)?;
            }
            for skipped in &table.skipped {
                writeln!(f, ". {id} {} skipped: {}", skipped.destination, skipped.reason)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ipnet::IpNet;

    use super::*;
    use crate::aws::ec2::model::Route;

    const SRC: &str = "rtb-0source000000000";
    const VPC: &str = "vpc-0000000000000001";

    fn cidr(s: &str) -> Destination {
        Destination::Cidr(s.parse::<IpNet>().unwrap())
    }
    fn i(id: &str) -> Target {
        Target::Instance(id.into())
    }
    fn eni(id: &str) -> Target {
        Target::NetworkInterface(id.into())
    }
    fn route(dest: &str, target: Target) -> Route {
        Route::active(cidr(dest), target)
    }
    fn blackhole(dest: &str, target: Target) -> Route {
        Route { state: RouteState::Blackhole, ..route(dest, target) }
    }
    fn with_origin(mut r: Route, origin: RouteOrigin) -> Route {
        r.origin = origin;
        r
    }
    fn table(id: &str, routes: Vec<Route>) -> RouteTable {
        RouteTable { routes, ..RouteTable::new(id, VPC) }
    }
    fn managed() -> ManagedCidrs {
        ManagedCidrs::new(vec!["100.96.0.0/11".parse().unwrap(), "fd00:100:96::/48".parse().unwrap()])
    }
    /// The routes every private table carries that kube-rtsync must never
    /// touch.
    fn unmanaged() -> Vec<Route> {
        vec![
            with_origin(route("10.0.0.0/16", Target::Gateway("local".into())), RouteOrigin::CreateRouteTable),
            route("0.0.0.0/0", Target::NatGateway("nat-0a".into())),
            route("::/0", Target::EgressOnlyInternetGateway("eigw-0a".into())),
            route("172.16.0.0/12", Target::VpcPeeringConnection("pcx-0a".into())),
            with_origin(
                route("192.168.0.0/16", Target::Gateway("vgw-0a".into())),
                RouteOrigin::EnableVgwRoutePropagation,
            ),
            Route::active(Destination::PrefixList("pl-0a".into()), Target::Gateway("vgw-0a".into())),
        ]
    }
    fn private(id: &str, mut extra: Vec<Route>) -> RouteTable {
        let mut routes = unmanaged();
        routes.append(&mut extra);
        table(id, routes)
    }
    fn plan_one(source: &RouteTable, target: &RouteTable) -> TablePlan {
        let desired = desired_routes(source, &managed());
        plan(&desired, std::slice::from_ref(target), &managed()).tables.remove(0)
    }

    /// Applies a table's actions to a copy of it, as EC2 would.
    fn simulate(table: &RouteTable, actions: &[RouteAction]) -> RouteTable {
        let mut out = table.clone();
        for action in actions {
            match action {
                RouteAction::Create { destination, target } => {
                    out.routes.push(Route::active(destination.clone(), target.clone()))
                }
                RouteAction::Replace { destination, to, .. } => {
                    let r = out.routes.iter_mut().find(|r| &r.destination == destination).unwrap();
                    r.target = to.clone();
                    r.state = RouteState::Active;
                }
                RouteAction::Delete { destination, .. } => out.routes.retain(|r| &r.destination != destination),
            }
        }
        out
    }

    #[test]
    fn desired_routes_are_the_active_managed_static_routes_of_the_source() {
        let mut routes = unmanaged();
        routes.extend([
            route("100.96.1.0/24", i("i-1")),
            route("100.96.2.0/24", eni("eni-2")),
            route("fd00:100:96:3::/64", eni("eni-3")),
            blackhole("100.96.4.0/24", i("i-4")),
            with_origin(
                route("100.96.5.0/24", Target::Gateway("vgw-0a".into())),
                RouteOrigin::EnableVgwRoutePropagation,
            ),
            route("100.128.0.0/24", i("i-outside")),
            route("100.96.6.0/24", Target::Unknown),
            route("100.96.7.0/24", Target::NatGateway("nat-7".into())),
        ]);
        let desired = desired_routes(&table(SRC, routes), &managed());
        let expected: BTreeMap<Destination, Target> = [
            (cidr("100.96.1.0/24"), i("i-1")),
            (cidr("100.96.2.0/24"), eni("eni-2")),
            (cidr("fd00:100:96:3::/64"), eni("eni-3")),
        ]
        .into();
        assert_eq!(desired.routes, expected);
        // Not copied: a blackhole-like unknown target, and a route through a
        // NAT gateway.
        let skipped: Vec<(Destination, &str)> =
            desired.skipped.iter().map(|s| (s.destination.clone(), s.reason.as_str())).collect();
        assert_eq!(
            skipped,
            vec![
                (cidr("100.96.6.0/24"), "the source route's target cannot be copied with CreateRoute"),
                (cidr("100.96.7.0/24"), GATEWAY_ROUTE),
            ]
        );
        assert_eq!(desired.managed_count(), 5);
    }

    #[test]
    fn equal_tables_give_an_empty_plan() {
        let pods = vec![route("100.96.1.0/24", i("i-1")), route("100.96.2.0/24", eni("eni-2"))];
        let source = table(SRC, pods.clone());
        let target = private("rtb-a", pods);
        let p = plan_one(&source, &target);
        assert!(p.is_empty(), "{:?}", p.actions);
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn missing_wrong_and_stale_routes_are_created_replaced_and_deleted() {
        let source = table(
            SRC,
            vec![
                route("100.96.1.0/24", i("i-1")),
                route("100.96.2.0/24", eni("eni-2")),
                route("100.96.3.0/24", eni("eni-3")),
            ],
        );
        let target = private(
            "rtb-a",
            vec![
                route("100.96.2.0/24", i("i-old")),
                route("100.96.9.0/24", i("i-9")),
                route("100.96.3.0/24", eni("eni-3")),
            ],
        );
        let p = plan_one(&source, &target);
        assert_eq!(
            p.actions,
            vec![
                RouteAction::Delete { destination: cidr("100.96.9.0/24"), target: i("i-9") },
                RouteAction::Replace { destination: cidr("100.96.2.0/24"), from: i("i-old"), to: eni("eni-2") },
                RouteAction::Create { destination: cidr("100.96.1.0/24"), target: i("i-1") },
            ]
        );
    }

    #[test]
    fn the_reverse_direction_undoes_the_difference() {
        let a = vec![route("100.96.1.0/24", i("i-1")), route("100.96.2.0/24", i("i-2"))];
        let b = vec![route("100.96.2.0/24", i("i-x")), route("100.96.3.0/24", i("i-3"))];
        let forward = plan_one(&table(SRC, a.clone()), &private("rtb-a", b.clone()));
        let backward = plan_one(&table(SRC, b), &private("rtb-a", a));
        assert_eq!(
            forward.actions,
            vec![
                RouteAction::Delete { destination: cidr("100.96.3.0/24"), target: i("i-3") },
                RouteAction::Replace { destination: cidr("100.96.2.0/24"), from: i("i-x"), to: i("i-2") },
                RouteAction::Create { destination: cidr("100.96.1.0/24"), target: i("i-1") },
            ]
        );
        assert_eq!(
            backward.actions,
            vec![
                RouteAction::Delete { destination: cidr("100.96.1.0/24"), target: i("i-1") },
                RouteAction::Replace { destination: cidr("100.96.2.0/24"), from: i("i-2"), to: i("i-x") },
                RouteAction::Create { destination: cidr("100.96.3.0/24"), target: i("i-3") },
            ]
        );
    }

    #[test]
    fn blackholes_are_deleted_or_repaired() {
        // In the source: the node is gone, so its mirrors go too.
        let source = table(SRC, vec![blackhole("100.96.4.0/24", i("i-4")), route("100.96.5.0/24", i("i-5"))]);
        let target = private(
            "rtb-a",
            vec![
                route("100.96.4.0/24", i("i-4")),
                // In the target only: repoint it at what the source has.
                blackhole("100.96.5.0/24", i("i-5")),
                // A blackhole the source lacks entirely.
                blackhole("100.96.6.0/24", i("i-6")),
            ],
        );
        let p = plan_one(&source, &target);
        assert_eq!(
            p.actions,
            vec![
                RouteAction::Delete { destination: cidr("100.96.4.0/24"), target: i("i-4") },
                RouteAction::Delete { destination: cidr("100.96.6.0/24"), target: i("i-6") },
                RouteAction::Replace { destination: cidr("100.96.5.0/24"), from: i("i-5"), to: i("i-5") },
            ]
        );
    }

    #[test]
    fn ipv6_pod_routes_are_mirrored_like_ipv4() {
        let source = table(SRC, vec![route("fd00:100:96:1::/64", eni("eni-1"))]);
        let target = private("rtb-a", vec![route("fd00:100:96:2::/64", eni("eni-2"))]);
        assert_eq!(
            plan_one(&source, &target).actions,
            vec![
                RouteAction::Delete { destination: cidr("fd00:100:96:2::/64"), target: eni("eni-2") },
                RouteAction::Create { destination: cidr("fd00:100:96:1::/64"), target: eni("eni-1") },
            ]
        );
    }

    #[test]
    fn unmanaged_prefix_list_and_propagated_routes_are_never_touched() {
        // The source has none of the target's unmanaged routes, and the
        // target has none of the source's: neither side may matter.
        let source = table(SRC, vec![route("100.96.1.0/24", i("i-1")), route("10.50.0.0/16", i("i-other"))]);
        let mut target = private("rtb-a", vec![route("100.96.1.0/24", i("i-1"))]);
        target.routes.push(route("100.64.0.0/24", i("i-cgnat-outside")));
        assert!(plan_one(&source, &target).is_empty());
    }

    #[test]
    fn a_propagated_route_on_a_managed_destination_is_skipped_not_replaced() {
        let source = table(SRC, vec![route("100.96.1.0/24", i("i-1"))]);
        let target = private(
            "rtb-a",
            vec![with_origin(
                route("100.96.1.0/24", Target::Gateway("vgw-0a".into())),
                RouteOrigin::EnableVgwRoutePropagation,
            )],
        );
        let p = plan_one(&source, &target);
        assert!(p.actions.is_empty());
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].destination, cidr("100.96.1.0/24"));
    }

    #[test]
    fn a_source_route_that_cannot_be_copied_is_left_alone_in_targets() {
        let source = table(SRC, vec![route("100.96.6.0/24", Target::Unknown)]);
        let target = private("rtb-a", vec![route("100.96.6.0/24", i("i-6"))]);
        let desired = desired_routes(&source, &managed());
        let p = plan(&desired, &[target], &managed());
        assert!(p.is_empty());
        assert_eq!(desired.skipped.len(), 1);
    }

    #[test]
    fn replanning_after_applying_gives_an_empty_plan() {
        let source = table(
            SRC,
            vec![
                route("100.96.1.0/24", i("i-1")),
                route("100.96.2.0/24", eni("eni-2")),
                route("fd00:100:96:3::/64", eni("eni-3")),
            ],
        );
        let targets = vec![
            private("rtb-b", vec![route("100.96.2.0/24", i("i-old")), blackhole("100.96.9.0/24", i("i-9"))]),
            private("rtb-a", vec![]),
            table("rtb-c", vec![route("100.96.1.0/24", i("i-1"))]),
        ];
        let desired = desired_routes(&source, &managed());
        let first = plan(&desired, &targets, &managed());
        assert_eq!(first.action_count(), 4 + 3 + 2);
        let applied: Vec<RouteTable> = first
            .tables
            .iter()
            .map(|tp| simulate(targets.iter().find(|t| t.id == tp.route_table_id).unwrap(), &tp.actions))
            .collect();
        let second = plan(&desired, &applied, &managed());
        assert!(second.is_empty(), "{second}");
        // The unmanaged routes came through untouched.
        for table in &applied {
            if table.id != "rtb-c" {
                for r in unmanaged() {
                    assert!(table.routes.contains(&r), "{} lost {:?}", table.id, r);
                }
            }
        }
    }

    #[test]
    fn tables_are_ordered_by_id_and_printed_one_line_per_action() {
        let source = table(SRC, vec![route("100.96.3.0/24", eni("eni-3")), route("100.96.2.0/24", i("i-new"))]);
        let targets = vec![
            table(
                "rtb-b",
                vec![
                    route("100.96.2.0/24", i("i-new")),
                    route("100.96.3.0/24", eni("eni-3")),
                    route("100.96.9.0/24", i("i-9")),
                ],
            ),
            table("rtb-a", vec![route("100.96.2.0/24", i("i-old"))]),
        ];
        let p = plan(&desired_routes(&source, &managed()), &targets, &managed());
        assert_eq!(
            p.to_string(),
            "~ rtb-a 100.96.2.0/24 i-old -> i-new\n+ rtb-a 100.96.3.0/24 -> eni-3\n- rtb-b 100.96.9.0/24\n"
        );
    }

    #[test]
    fn an_empty_source_withholds_deletes_unless_allowed() {
        let source = table(SRC, unmanaged());
        let targets = vec![private("rtb-a", vec![route("100.96.1.0/24", i("i-1"))])];
        let desired = desired_routes(&source, &managed());
        let guards = Guards { allow_empty_source: false, route_table_limit: 50 };
        let held = plan(&desired, &targets, &managed()).guard(&desired, guards);
        assert!(held.is_empty());
        assert_eq!(held.withheld_count(), 1);
        assert_eq!(held.tables[0].withheld[0].reason, Guard::EmptySource);

        let allowed =
            plan(&desired, &targets, &managed()).guard(&desired, Guards { allow_empty_source: true, ..guards });
        assert_eq!(allowed.action_count(), 1);
        assert_eq!(allowed.withheld_count(), 0);
    }

    #[test]
    fn creates_that_would_overflow_a_table_are_withheld() {
        let source = table(SRC, (1..=4).map(|n| route(&format!("100.96.{n}.0/24"), i(&format!("i-{n}")))).collect());
        // 6 unmanaged + 1 stale = 7 routes; after the plan: 7 - 1 + 4 = 10.
        let targets = vec![private("rtb-a", vec![route("100.96.9.0/24", i("i-9"))])];
        let desired = desired_routes(&source, &managed());
        let fits = plan(&desired, &targets, &managed())
            .guard(&desired, Guards { allow_empty_source: false, route_table_limit: 10 });
        assert_eq!(fits.action_count(), 5);
        let over = plan(&desired, &targets, &managed())
            .guard(&desired, Guards { allow_empty_source: false, route_table_limit: 9 });
        assert_eq!(
            over.tables[0].actions,
            vec![RouteAction::Delete { destination: cidr("100.96.9.0/24"), target: i("i-9") }]
        );
        assert_eq!(over.withheld_count(), 4);
        assert!(over.tables[0].withheld.iter().all(|w| w.reason == Guard::RouteTableLimit));
    }

    #[test]
    fn the_printed_plan_shows_withheld_and_skipped_changes() {
        let source = table(SRC, (1..=2).map(|n| route(&format!("100.96.{n}.0/24"), i(&format!("i-{n}")))).collect());
        let targets = vec![
            // 1 route; creating 2 would take it to 3, past a limit of 2.
            table("rtb-a", vec![route("10.9.0.0/16", Target::TransitGateway("tgw-1".into()))]),
            table(
                "rtb-b",
                vec![
                    route("100.96.1.0/24", i("i-1")),
                    with_origin(
                        route("100.96.2.0/24", Target::Gateway("vgw-0a".into())),
                        RouteOrigin::EnableVgwRoutePropagation,
                    ),
                ],
            ),
        ];
        let desired = desired_routes(&source, &managed());
        let p = plan(&desired, &targets, &managed())
            .guard(&desired, Guards { allow_empty_source: false, route_table_limit: 2 });
        assert_eq!(
            p.to_string(),
            "\
? rtb-a 100.96.1.0/24 create -> i-1 withheld: the table would exceed ROUTE_TABLE_LIMIT; creates are withheld
? rtb-a 100.96.2.0/24 create -> i-2 withheld: the table would exceed ROUTE_TABLE_LIMIT; creates are withheld
. rtb-b 100.96.2.0/24 skipped: the table holds this destination with a route of origin EnableVgwRoutePropagation
"
        );
    }

    #[test]
    fn routes_through_gateways_inside_the_cidrs_are_never_copied_replaced_or_deleted() {
        let tgw = |id: &str| Target::TransitGateway(id.into());
        let source = table(SRC, vec![route("100.96.1.0/24", i("i-1")), route("100.96.2.0/24", i("i-2"))]);
        let target = private(
            "rtb-a",
            vec![
                // Another cluster's pods through a transit gateway: the source
                // lacks it.
                route("100.100.0.0/16", tgw("tgw-other")),
                // The source has a pod route for it, the table an operator's
                // gateway route.
                route("100.96.2.0/24", Target::VpcPeeringConnection("pcx-1".into())),
            ],
        );
        let p = plan_one(&source, &target);
        assert_eq!(p.actions, vec![RouteAction::Create { destination: cidr("100.96.1.0/24"), target: i("i-1") }]);
        let skipped: Vec<Destination> = p.skipped.iter().map(|s| s.destination.clone()).collect();
        assert_eq!(skipped, vec![cidr("100.100.0.0/16"), cidr("100.96.2.0/24")]);
        assert!(p.skipped.iter().all(|s| s.reason == GATEWAY_ROUTE));
    }
}
