//! The pure egress planner: which NAT each enrolled table's default route goes
//! through, the route and failback-tag changes that takes, and why, in a form
//! people can read. No I/O, no clock: `now` comes in as an argument.

use std::fmt;

use serde::Serialize;

use crate::jobs::egress::health::{Health, evaluate, needs_source_dest_fix};
use crate::jobs::egress::model::{DefaultRoute, EgressTable, Nat, NatTarget, Settings, TableZone, Zone};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EgressPlan {
    /// Ordered as the tables chose: by zone, then id (tables without a zone
    /// first).
    pub tables: Vec<TableDecision>,
    pub nats: Vec<NatStatus>,
    /// NAT instances whose source/destination check must be turned off. They
    /// count unhealthy (rule 1): the caller makes these fixes first, then plans
    /// again with the facts of the fixes that succeeded.
    pub source_dest_fixes: Vec<String>,
}

/// Every enrolled NAT with its health, so that the report shows an unhealthy
/// NAT no table is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NatStatus {
    pub id: String,
    pub zone: Option<Zone>,
    pub regional: bool,
    pub health: Health,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableDecision {
    pub table_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub zone: TableZone,
    /// What the default route goes through now; None when it is missing or
    /// through something that is not a NAT.
    pub current: Option<Current>,
    /// The NAT the table ends on, changed or not.
    pub chosen: Option<Chosen>,
    pub reason: Reason,
    pub route_change: Option<RouteChange>,
    /// The failback clock to write on the table.
    pub tag_change: Option<TagChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Current {
    /// The target as the route names it (instance, interface, gateway, or a
    /// blackhole's vanished target).
    pub target: String,
    /// The enrolled NAT behind it, if any.
    pub nat: Option<String>,
    pub zone: Option<Zone>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub regional: bool,
    pub health: Health,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chosen {
    pub nat: String,
    pub zone: Option<Zone>,
    /// A regional NAT gateway (the fallback), which has no zone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub regional: bool,
    pub target: NatTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RouteChange {
    Create { nat: NatTarget },
    Replace { from: String, to: NatTarget },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
pub enum TagChange {
    /// Epoch seconds since which the table's zone has had a healthy NAT.
    Set(u64),
    Clear,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Reason {
    /// The current NAT is healthy and in the table's zone.
    Keep,
    /// Away from an unhealthy, unknown or blackholed current NAT.
    FailOver {
        from_health_reason: String,
    },
    /// Onto the regional NAT gateway (`EGRESS_REGIONAL_FALLBACK`): the table's
    /// zone has no healthy NAT.
    RegionalFallback {
        from_health_reason: String,
    },
    FailBack {
        healthy_for_s: u64,
    },
    FailBackHeld {
        healthy_for_s: u64,
        needed_s: u64,
    },
    /// On a healthy NAT of another zone, and its own zone has none healthy.
    HeldNoHomeNat,
    NewRoute,
    NoHealthyNat,
    LeftAlone(LeftAlone),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "why", content = "detail", rename_all = "snake_case")]
pub enum LeftAlone {
    NoZone,
    SeveralZones,
    NotThroughNat {
        kind: String,
        id: String,
    },
    /// An existing instance, interface or NAT gateway that is not enrolled: an
    /// appliance, another router id's NAT.
    NotEnrolled {
        kind: String,
        id: String,
    },
    RegionalNatGateway {
        id: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Keep => f.write_str("own zone's NAT is healthy"),
            Reason::FailOver { .. } => f.write_str("fail over"),
            Reason::RegionalFallback { .. } => f.write_str("regional fallback"),
            Reason::FailBack { healthy_for_s } => write!(f, "fail back: own zone's NAT healthy for {healthy_for_s} s"),
            Reason::FailBackHeld { healthy_for_s, needed_s } => {
                write!(f, "fail back held: own zone's NAT healthy for {healthy_for_s} s of {needed_s} s")
            }
            Reason::HeldNoHomeNat => f.write_str("stays: no healthy NAT in its zone"),
            Reason::NewRoute => f.write_str("new default route"),
            Reason::NoHealthyNat => f.write_str("no healthy NAT anywhere"),
            Reason::LeftAlone(why) => write!(f, "left alone: {why}"),
        }
    }
}

impl Reason {
    /// The reason with what the plan's line shows beside it: why a failover
    /// left its NAT.
    pub fn detailed(&self) -> String {
        match self {
            Reason::FailOver { from_health_reason } | Reason::RegionalFallback { from_health_reason }
                if !from_health_reason.is_empty() =>
            {
                format!("{self}: {from_health_reason}")
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for LeftAlone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The zone tag key is configurable, so the hint does not name it.
            LeftAlone::NoZone => f.write_str("no zone (tag the table with its zone or associate a subnet)"),
            LeftAlone::SeveralZones => f.write_str("subnets in several zones (tag the table with its zone)"),
            LeftAlone::NotThroughNat { kind, id } => write!(f, "through {kind} {id}, not a NAT"),
            LeftAlone::NotEnrolled { kind, id } => write!(f, "through {kind} {id}, which is not an enrolled NAT"),
            LeftAlone::RegionalNatGateway { id } => write!(f, "through regional NAT gateway {id}"),
        }
    }
}

impl EgressPlan {
    /// Nothing to write: no route, no tag, no source/destination fix.
    pub fn is_empty(&self) -> bool {
        self.source_dest_fixes.is_empty()
            && self.tables.iter().all(|t| t.route_change.is_none() && t.tag_change.is_none())
    }

    pub fn route_changes(&self) -> impl Iterator<Item = (&str, &RouteChange)> {
        self.tables.iter().filter_map(|t| Some((t.table_id.as_str(), t.route_change.as_ref()?)))
    }

    /// Failovers, onto another zone's NAT or onto the regional fallback.
    pub fn failed_over(&self) -> usize {
        self.count(|r| matches!(r, Reason::FailOver { .. } | Reason::RegionalFallback { .. }))
    }

    pub fn failed_back(&self) -> usize {
        self.count(|r| matches!(r, Reason::FailBack { .. }))
    }

    pub fn without_healthy_nat(&self) -> usize {
        self.count(|r| matches!(r, Reason::NoHealthyNat))
    }

    pub fn left_alone(&self) -> usize {
        self.count(|r| matches!(r, Reason::LeftAlone(_)))
    }

    /// Regional gateways are not counted: they never carry a failed-over table.
    pub fn healthy_nats(&self) -> usize {
        self.nats.iter().filter(|n| !n.regional && n.health.is_healthy()).count()
    }

    pub fn unhealthy_nats(&self) -> usize {
        self.nats.iter().filter(|n| !n.regional && !n.health.is_healthy()).count()
    }

    fn count(&self, which: impl Fn(&Reason) -> bool) -> usize {
        self.tables.iter().filter(|t| which(&t.reason)).count()
    }
}

pub fn plan(tables: &[EgressTable], nats: &[Nat], settings: &Settings, now: u64) -> EgressPlan {
    let health: Vec<Health> = nats.iter().map(|nat| evaluate(nat, settings)).collect();
    // Blackholes carry no traffic, so they add no load.
    let load = nats
        .iter()
        .map(|nat| {
            tables.iter().filter(|t| !is_blackhole(&t.default_route) && nat.is_named_by(&t.default_route)).count()
        })
        .collect();
    let mut planner = Planner { nats, health, load, settings, now };

    let mut order: Vec<&EgressTable> = tables.iter().collect();
    order.sort_by(|a, b| (a.zone.zone(), &a.id).cmp(&(b.zone.zone(), &b.id)));
    let decisions = order.into_iter().map(|table| planner.decide(table)).collect();

    let source_dest_fixes = source_dest_fixes(nats, settings);
    let nats = nats
        .iter()
        .zip(planner.health)
        .map(|(nat, health)| NatStatus {
            id: nat.id.clone(),
            zone: nat.zone.clone(),
            regional: nat.is_regional(),
            health,
        })
        .collect();
    EgressPlan { tables: decisions, nats, source_dest_fixes }
}

/// Age (seconds) past which a failback clock is read as left behind by a delete
/// that failed: twice the hold, and ten minutes more for invocations that
/// failed or came late.
pub fn stale_clock_after(failback_seconds: u64) -> u64 {
    failback_seconds.saturating_mul(2).saturating_add(600)
}

/// The NAT instances whose source/destination check this job turns off, by id.
pub fn source_dest_fixes(nats: &[Nat], settings: &Settings) -> Vec<String> {
    let mut fixes: Vec<String> =
        nats.iter().filter(|nat| needs_source_dest_fix(nat, settings)).map(|nat| nat.id.clone()).collect();
    fixes.sort();
    fixes
}

/// The facts once these instances' source/destination check is off: only a fix
/// that succeeded (or, in a dry run, one that is planned) lets an instance
/// carry a table (rule 1).
pub fn with_source_dest_fixed(nats: &mut [Nat], fixed: &[&str]) {
    for nat in nats.iter_mut().filter(|nat| fixed.contains(&nat.id.as_str())) {
        if let crate::jobs::egress::model::NatKind::Instance { facts, .. } = &mut nat.kind {
            facts.source_dest_check = Some(false);
        }
    }
}

fn is_blackhole(route: &DefaultRoute) -> bool {
    matches!(route, DefaultRoute::Blackhole(_))
}

struct Planner<'a> {
    nats: &'a [Nat],
    health: Vec<Health>,
    /// Tables routed through each NAT, kept up to date as tables move in this
    /// plan.
    load: Vec<usize>,
    settings: &'a Settings,
    now: u64,
}

impl Planner<'_> {
    fn decide(&mut self, table: &EgressTable) -> TableDecision {
        let route = &table.default_route;
        let named = self.nats.iter().position(|nat| nat.is_named_by(route));
        let mut decision = TableDecision {
            table_id: table.id.clone(),
            name: table.name.clone(),
            zone: table.zone.clone(),
            current: self.current(route, named),
            chosen: None,
            reason: Reason::NoHealthyNat,
            route_change: None,
            tag_change: None,
        };
        let zone = match self.managed_zone(table, named) {
            Ok(zone) => zone,
            Err(why) => {
                decision.reason = Reason::LeftAlone(why);
                return decision;
            }
        };
        let active = named.filter(|_| !is_blackhole(route));
        let home = self.least_loaded(|i| self.is_in(i, zone));
        // A clock from the future (skew, a hand-edited tag) would hold the
        // failback indefinitely: restart it. A clock far older than the hold is
        // one a failed delete left behind (a running clock is used, and
        // cleared, once the hold is over): restart it too, so that a leftover
        // never skips a later hold.
        let since = table
            .home_healthy_since
            .filter(|&t| t <= self.now && self.now - t <= stale_clock_after(self.settings.failback_seconds));
        let (end, reason) = self.choose(zone, active, home, since, decision.current.as_ref());
        decision.reason = reason;

        if let Some(chosen) = end.filter(|&k| Some(k) != active) {
            if let Some(old) = active {
                self.load[old] -= 1;
            }
            self.load[chosen] += 1;
            let to = self.nats[chosen].target();
            decision.route_change = Some(match route.target_id() {
                None => RouteChange::Create { nat: to },
                Some(from) => RouteChange::Replace { from: from.to_owned(), to },
            });
        }
        // The clock runs only while the table stays failed over and its zone
        // has a healthy NAT; any other sighting stops it, so a NAT flapping
        // faster than the failback time never gets its tables back.
        let still_failed_over = end.is_some_and(|k| !self.is_in(k, zone)) && home.is_some();
        let desired = still_failed_over.then(|| since.unwrap_or(self.now));
        if desired != table.home_healthy_since {
            decision.tag_change = Some(desired.map_or(TagChange::Clear, TagChange::Set));
        }
        decision.chosen = end.map(|k| {
            let nat = &self.nats[k];
            Chosen { nat: nat.id.clone(), zone: nat.zone.clone(), regional: nat.is_regional(), target: nat.target() }
        });
        decision
    }

    /// The zone the table's route is managed for, or why the table is left
    /// alone.
    fn managed_zone<'t>(&self, table: &'t EgressTable, named: Option<usize>) -> Result<&'t str, LeftAlone> {
        match (&table.zone, &table.default_route, named) {
            (TableZone::None, _, _) => Err(LeftAlone::NoZone),
            (TableZone::Several(_), _, _) => Err(LeftAlone::SeveralZones),
            (_, DefaultRoute::Other { kind, id }, _) => {
                Err(LeftAlone::NotThroughNat { kind: kind.clone(), id: id.clone() })
            }
            // Rule 4: an active route through an instance, interface or NAT
            // gateway that is not enrolled goes through something that exists
            // and is not ours (a firewall, a proxy, another router id's NAT).
            // Only a blackhole through one of them counts as a failed NAT.
            (_, DefaultRoute::Instance(id), None) => {
                Err(LeftAlone::NotEnrolled { kind: "instance".into(), id: id.clone() })
            }
            (_, DefaultRoute::NetworkInterface(id), None) => {
                Err(LeftAlone::NotEnrolled { kind: "network interface".into(), id: id.clone() })
            }
            (_, DefaultRoute::NatGateway(id), None) => {
                Err(LeftAlone::NotEnrolled { kind: "NAT gateway".into(), id: id.clone() })
            }
            // Even blackholed or unhealthy: whoever routed the table through a
            // regional gateway chose regional egress.
            (_, _, Some(i)) if self.nats[i].is_regional() && !self.settings.regional_fallback => {
                Err(LeftAlone::RegionalNatGateway { id: self.nats[i].id.clone() })
            }
            (TableZone::Zone(zone), _, _) => Ok(zone),
        }
    }

    /// Rule 2 of the design, in its order; `home` is the least loaded healthy
    /// NAT of the table's zone.
    fn choose(
        &self,
        zone: &str,
        active: Option<usize>,
        home: Option<usize>,
        since: Option<u64>,
        current: Option<&Current>,
    ) -> (Option<usize>, Reason) {
        let moving = match current {
            None => Reason::NewRoute,
            Some(current) => {
                Reason::FailOver { from_health_reason: current.health.reason().unwrap_or_default().to_owned() }
            }
        };
        let fallback = |moving: Reason| match moving {
            Reason::FailOver { from_health_reason } => Reason::RegionalFallback { from_health_reason },
            Reason::NewRoute => Reason::RegionalFallback { from_health_reason: String::new() },
            other => other,
        };
        match (active.filter(|&i| self.is_candidate(i)), home) {
            (Some(current), _) if self.is_in(current, zone) => (Some(current), Reason::Keep),
            (Some(current), Some(home)) => {
                let healthy_for_s = since.map_or(0, |t| self.now - t);
                let needed_s = self.settings.failback_seconds;
                if needed_s == 0 || since.is_some() && healthy_for_s >= needed_s {
                    (Some(home), Reason::FailBack { healthy_for_s })
                } else {
                    (Some(current), Reason::FailBackHeld { healthy_for_s, needed_s })
                }
            }
            (None, Some(home)) => (Some(home), moving),
            // The regional gateway serves the zone from the zone: it beats
            // staying on another zone's NAT.
            (Some(current), None) if !self.nats[current].is_regional() && self.regional().is_some() => {
                let from = format!("{} is in another zone and the zone has no healthy NAT", self.nats[current].id);
                (self.regional(), Reason::RegionalFallback { from_health_reason: from })
            }
            (Some(current), None) => (Some(current), Reason::HeldNoHomeNat),
            (None, None) => match (self.regional(), self.least_loaded(|i| !self.nats[i].is_regional())) {
                (Some(regional), _) => (Some(regional), fallback(moving)),
                (None, Some(anywhere)) => (Some(anywhere), moving),
                (None, None) => (None, Reason::NoHealthyNat),
            },
        }
    }

    fn current(&self, route: &DefaultRoute, named: Option<usize>) -> Option<Current> {
        let target = match route {
            DefaultRoute::Missing | DefaultRoute::Other { .. } => return None,
            _ => route.target_id()?.to_owned(),
        };
        let health = match named {
            _ if is_blackhole(route) => Health::unhealthy("route is a blackhole"),
            Some(i) => self.health[i].clone(),
            None => Health::unhealthy("unknown NAT (gone)"),
        };
        let nat = named.map(|i| &self.nats[i]);
        Some(Current {
            target,
            nat: nat.map(|n| n.id.clone()),
            zone: nat.and_then(|n| n.zone.clone()),
            regional: nat.is_some_and(Nat::is_regional),
            health,
        })
    }

    fn is_in(&self, i: usize, zone: &str) -> bool {
        self.nats[i].zone.as_deref() == Some(zone)
    }

    /// A NAT a table may be routed to: healthy, and not regional unless the
    /// fallback is on.
    fn is_candidate(&self, i: usize) -> bool {
        self.health[i].is_healthy() && (!self.nats[i].is_regional() || self.settings.regional_fallback)
    }

    /// The least loaded candidate regional gateway (none unless the fallback is
    /// on).
    fn regional(&self) -> Option<usize> {
        self.least_loaded(|i| self.nats[i].is_regional())
    }

    /// Ties go to the zone name, then the id; a NAT of unknown zone comes last
    /// but still beats no egress at all.
    fn least_loaded(&self, wanted: impl Fn(usize) -> bool) -> Option<usize> {
        let key = |i: usize| {
            let nat = &self.nats[i];
            (self.load[i], nat.zone.is_none(), nat.zone.as_deref(), nat.id.as_str())
        };
        (0..self.nats.len()).filter(|&i| self.is_candidate(i) && wanted(i)).min_by_key(|&i| key(i))
    }
}

impl fmt::Display for EgressPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in &self.source_dest_fixes {
            writeln!(f, "~ {id}: source/destination check off")?;
        }
        for table in &self.tables {
            writeln!(f, "{table}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TableDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sigil = match (&self.reason, &self.route_change) {
            (Reason::LeftAlone(_), _) => '.',
            (Reason::NoHealthyNat, _) => '?',
            (_, Some(RouteChange::Create { .. })) => '+',
            (_, Some(RouteChange::Replace { .. })) => '~',
            (_, None) => '=',
        };
        write!(f, "{sigil} {}", self.table_id)?;
        if let Some(name) = &self.name {
            write!(f, " \"{name}\"")?;
        }
        write!(f, " ({}): ", self.zone)?;
        if !matches!(self.reason, Reason::LeftAlone(_)) {
            match &self.current {
                Some(c) => {
                    let zone = if c.regional { Some("regional") } else { c.zone.as_deref() };
                    self.describe(f, &c.target, c.nat.as_deref(), zone, Some(&c.health))?
                }
                None => f.write_str("no default route")?,
            }
            if let (Some(_), Some(c)) = (&self.route_change, &self.chosen) {
                f.write_str(" -> ")?;
                let zone = if c.regional { Some("regional") } else { c.zone.as_deref() };
                self.describe(f, c.target.id(), Some(&c.nat), zone, None)?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}", self.reason)?;
        match self.tag_change {
            Some(TagChange::Set(since)) => write!(f, "; failback clock set to {since}"),
            Some(TagChange::Clear) => f.write_str("; failback clock cleared"),
            None => Ok(()),
        }
    }
}

impl TableDecision {
    /// `target (nat, zone, health)`, naming the NAT only when the route names
    /// something else (its interface) and the zone only when it is not the
    /// table's own.
    fn describe(
        &self,
        f: &mut fmt::Formatter<'_>,
        target: &str,
        nat: Option<&str>,
        zone: Option<&str>,
        health: Option<&Health>,
    ) -> fmt::Result {
        let mut notes: Vec<String> = Vec::new();
        notes.extend(nat.filter(|&n| n != target).map(str::to_owned));
        notes.extend(zone.filter(|&z| Some(z) != self.zone.zone()).map(str::to_owned));
        notes.extend(health.map(Health::to_string));
        f.write_str(target)?;
        if notes.is_empty() { Ok(()) } else { write!(f, " ({})", notes.join(", ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::egress::model::{NatGatewayFacts, NatInstanceFacts, NatKind, ProbeResult};

    const A: &str = "us-east-1a";
    const B: &str = "us-east-1b";
    const C: &str = "us-east-1c";
    const NOW: u64 = 1_700_000_000;

    fn settings() -> Settings {
        Settings { failback_seconds: 300, fix_source_dest_check: true, probe_enabled: false, regional_fallback: false }
    }

    fn eni(instance_id: &str) -> String {
        instance_id.replacen("i-", "eni-", 1)
    }

    /// A healthy NAT instance with a primary and a secondary interface.
    fn instance(id: &str, zone: &str) -> Nat {
        let facts = NatInstanceFacts {
            state: "running".into(),
            system_status: Some("ok".into()),
            instance_status: Some("ok".into()),
            source_dest_check: Some(false),
            probe: Some(ProbeResult::Answered),
            leaving: None,
        };
        let eni_ids = vec![eni(id), format!("{}-2", eni(id))];
        Nat { id: id.into(), zone: Some(zone.into()), kind: NatKind::Instance { eni_ids, private_ip: None, facts } }
    }

    fn with(mut nat: Nat, change: impl FnOnce(&mut NatInstanceFacts)) -> Nat {
        if let NatKind::Instance { facts, .. } = &mut nat.kind {
            change(facts);
        }
        nat
    }

    fn stopped(nat: Nat) -> Nat {
        with(nat, |f| f.state = "stopped".into())
    }

    fn gateway(id: &str, zone: &str, state: &str) -> Nat {
        let kind = NatKind::Gateway { regional: false, facts: NatGatewayFacts { state: state.into() } };
        Nat { id: id.into(), zone: Some(zone.into()), kind }
    }

    fn regional(id: &str, state: &str) -> Nat {
        let kind = NatKind::Gateway { regional: true, facts: NatGatewayFacts { state: state.into() } };
        Nat { id: id.into(), zone: None, kind }
    }

    /// The route as this job writes it: an instance's primary interface, or the
    /// gateway.
    fn via(nat_id: &str) -> DefaultRoute {
        if nat_id.starts_with("i-") {
            DefaultRoute::NetworkInterface(eni(nat_id))
        } else {
            DefaultRoute::NatGateway(nat_id.into())
        }
    }

    fn to(nat_id: &str) -> NatTarget {
        if nat_id.starts_with("i-") {
            NatTarget::NetworkInterface(eni(nat_id))
        } else {
            NatTarget::NatGateway(nat_id.into())
        }
    }

    fn replace(from: &str, nat_id: &str) -> Option<RouteChange> {
        Some(RouteChange::Replace { from: from.into(), to: to(nat_id) })
    }

    fn table(id: &str, zone: &str, default_route: DefaultRoute) -> EgressTable {
        let zone = TableZone::Zone(zone.into());
        EgressTable { id: id.into(), name: None, zone, default_route, home_healthy_since: None }
    }

    fn tagged(mut table: EgressTable, since: u64) -> EgressTable {
        table.home_healthy_since = Some(since);
        table
    }

    fn decision<'a>(plan: &'a EgressPlan, table_id: &str) -> &'a TableDecision {
        plan.tables.iter().find(|t| t.table_id == table_id).expect("table in plan")
    }

    fn chosen(decision: &TableDecision) -> Option<&str> {
        decision.chosen.as_ref().map(|c| c.nat.as_str())
    }

    /// What the caller does with a plan: write the routes and the failback
    /// clocks.
    fn apply(tables: &mut [EgressTable], plan: &EgressPlan) {
        for table in tables {
            let decision = decision(plan, &table.id);
            match &decision.route_change {
                Some(RouteChange::Create { nat: target } | RouteChange::Replace { to: target, .. }) => {
                    table.default_route = target.into();
                }
                None => {}
            }
            match decision.tag_change {
                Some(TagChange::Set(since)) => table.home_healthy_since = Some(since),
                Some(TagChange::Clear) => table.home_healthy_since = None,
                None => {}
            }
        }
    }

    #[test]
    fn a_table_on_its_own_healthy_nat_keeps_it_whatever_the_route_names() {
        let initializing = with(instance("i-a1", A), |f| f.instance_status = Some("initializing".into()));
        let unknown = with(instance("i-a1", A), |f| (f.system_status, f.instance_status) = (None, None));
        let cases = [
            ("the primary interface", instance("i-a1", A), via("i-a1")),
            ("the instance", instance("i-a1", A), DefaultRoute::Instance("i-a1".into())),
            ("the secondary interface", instance("i-a1", A), DefaultRoute::NetworkInterface("eni-a1-2".into())),
            ("a gateway", gateway("nat-a1", A, "available"), via("nat-a1")),
            ("an initializing instance", initializing, via("i-a1")),
            ("an instance without status", unknown, via("i-a1")),
        ];
        for (case, own, route) in cases {
            let nats = [own, instance("i-b1", B)];
            let plan = plan(&[table("rtb-a", A, route)], &nats, &settings(), NOW);
            let d = decision(&plan, "rtb-a");
            assert_eq!((&d.reason, d.route_change.as_ref(), d.tag_change), (&Reason::Keep, None, None), "{case}");
            assert_eq!(chosen(d), Some(nats[0].id.as_str()), "{case}");
            assert!(plan.is_empty(), "{case}");
        }
    }

    #[test]
    fn a_failback_clock_left_behind_by_a_failed_delete_is_restarted_not_trusted() {
        let nats = [instance("i-a1", A), instance("i-b1", B)];
        let cases = [
            ("three hours old", NOW - 3 * 3600, Reason::FailBackHeld { healthy_for_s: 0, needed_s: 300 }, Some(NOW)),
            ("just past the bound", NOW - 1201, Reason::FailBackHeld { healthy_for_s: 0, needed_s: 300 }, Some(NOW)),
            ("within the bound", NOW - 1200, Reason::FailBack { healthy_for_s: 1200 }, None),
            ("a running clock", NOW - 310, Reason::FailBack { healthy_for_s: 310 }, None),
        ];
        for (case, since, reason, restarted) in cases {
            let plan = plan(&[tagged(table("rtb-a", A, via("i-b1")), since)], &nats, &settings(), NOW);
            let d = decision(&plan, "rtb-a");
            assert_eq!(d.reason, reason, "{case}");
            match restarted {
                Some(at) => {
                    assert_eq!((d.tag_change, d.route_change.as_ref()), (Some(TagChange::Set(at)), None), "{case}")
                }
                None => assert_eq!(d.route_change, replace("eni-b1", "i-a1"), "{case}"),
            }
        }
    }

    #[test]
    fn a_table_back_home_has_its_failback_clock_cleared() {
        let nats = [instance("i-a1", A)];
        let plan = plan(&[tagged(table("rtb-a", A, via("i-a1")), NOW - 10)], &nats, &settings(), NOW);
        assert_eq!(decision(&plan, "rtb-a").tag_change, Some(TagChange::Clear));
    }

    #[test]
    fn a_table_fails_over_when_its_own_nat_is_unhealthy_or_gone() {
        let no_fix = Settings { fix_source_dest_check: false, ..settings() };
        let probing = Settings { probe_enabled: true, ..settings() };
        let a1 = || instance("i-a1", A);
        let cases = [
            ("stopped", stopped(a1()), via("i-a1"), settings(), "state stopped"),
            (
                "system check impaired",
                with(a1(), |f| f.system_status = Some("impaired".into())),
                via("i-a1"),
                settings(),
                "system status check impaired",
            ),
            (
                "instance check impaired",
                with(a1(), |f| f.instance_status = Some("impaired".into())),
                via("i-a1"),
                settings(),
                "instance status check impaired",
            ),
            (
                "probe failed",
                with(a1(), |f| f.probe = Some(ProbeResult::Failed("timeout".into()))),
                via("i-a1"),
                probing,
                "probe failed: timeout",
            ),
            (
                "source/dest check on, fix disabled",
                with(a1(), |f| f.source_dest_check = Some(true)),
                DefaultRoute::Instance("i-a1".into()),
                no_fix,
                "source/destination check is on",
            ),
            ("gateway deleted", gateway("nat-a1", A, "deleted"), via("nat-a1"), settings(), "state deleted"),
            ("gateway failed", gateway("nat-a1", A, "failed"), via("nat-a1"), settings(), "state failed"),
            (
                "blackhole",
                stopped(a1()),
                DefaultRoute::Blackhole("eni-gone".into()),
                settings(),
                "route is a blackhole",
            ),
            (
                "source/dest check on, fix not made",
                with(a1(), |f| f.source_dest_check = Some(true)),
                DefaultRoute::Instance("i-a1".into()),
                settings(),
                "source/destination check is on",
            ),
            (
                "blackhole through an instance that is not enrolled",
                stopped(a1()),
                DefaultRoute::Blackhole("i-gone".into()),
                settings(),
                "route is a blackhole",
            ),
        ];
        for (case, own, route, settings, why) in cases {
            let from = route.target_id().unwrap().to_owned();
            let nats = [own, instance("i-b1", B)];
            let plan = plan(&[table("rtb-a", A, route)], &nats, &settings, NOW);
            let d = decision(&plan, "rtb-a");
            assert_eq!(d.reason, Reason::FailOver { from_health_reason: why.into() }, "{case}");
            assert_eq!(d.route_change, replace(&from, "i-b1"), "{case}");
            assert_eq!(d.tag_change, None, "{case}");
            assert_eq!(plan.failed_over(), 1, "{case}");
        }
    }

    #[test]
    fn a_blackhole_through_a_healthy_own_nat_is_rewritten_to_it() {
        let nats = [instance("i-a1", A), instance("i-b1", B)];
        let plan = plan(&[table("rtb-a", A, DefaultRoute::Blackhole(eni("i-a1")))], &nats, &settings(), NOW);
        assert_eq!(decision(&plan, "rtb-a").route_change, replace("eni-a1", "i-a1"));
    }

    #[test]
    fn failover_takes_the_least_loaded_healthy_nat_elsewhere_ties_by_zone_then_id() {
        let cases = [
            ("fewer tables beat the zone name", vec![("i-b1", B, 1), ("i-c1", C, 0)], "i-c1"),
            ("fewer tables beat the zone name, reversed", vec![("i-b1", B, 0), ("i-c1", C, 1)], "i-b1"),
            ("equal load: the zone name beats the id", vec![("i-z9", B, 0), ("i-c1", C, 0)], "i-z9"),
            ("equal load: the zone name beats the id, reversed", vec![("i-z9", C, 0), ("i-c1", B, 0)], "i-c1"),
            ("equal load and zone: the id", vec![("i-b2", B, 0), ("i-b1", B, 0)], "i-b1"),
            ("equal load and zone: the id, reversed", vec![("i-b1", B, 0), ("i-b2", B, 0)], "i-b1"),
        ];
        for (case, others, expected) in cases {
            let mut nats = vec![stopped(instance("i-a1", A))];
            let mut tables = vec![table("rtb-a", A, via("i-a1"))];
            for (id, zone, load) in others {
                nats.push(instance(id, zone));
                tables.extend((0..load).map(|n| table(&format!("rtb-{id}-{n}"), zone, via(id))));
            }
            let plan = plan(&tables, &nats, &settings(), NOW);
            assert_eq!(decision(&plan, "rtb-a").route_change, replace("eni-a1", expected), "{case}");
        }
    }

    #[test]
    fn tables_that_must_choose_spread_evenly_over_their_zones_nats() {
        let nats = [stopped(instance("i-a1", A)), instance("i-a3", A), instance("i-a2", A), instance("i-b1", B)];
        let tables: Vec<_> = (1..=4).map(|n| table(&format!("rtb-{n}"), A, via("i-a1"))).collect();
        let plan = plan(&tables, &nats, &settings(), NOW);
        let choices: Vec<_> = plan.tables.iter().map(chosen).collect();
        assert_eq!(choices, [Some("i-a2"), Some("i-a3"), Some("i-a2"), Some("i-a3")]);
        assert!(plan.tables.iter().all(|d| matches!(d.reason, Reason::FailOver { .. })));
    }

    #[test]
    fn tables_failing_over_to_other_zones_spread_over_them() {
        let nats = [stopped(instance("i-a1", A)), instance("i-b1", B), instance("i-c1", C)];
        let tables = [table("rtb-1", A, via("i-a1")), table("rtb-2", A, via("i-a1")), table("rtb-3", A, via("i-a1"))];
        let plan = plan(&tables, &nats, &settings(), NOW);
        let choices: Vec<_> = plan.tables.iter().map(chosen).collect();
        assert_eq!(choices, [Some("i-b1"), Some("i-c1"), Some("i-b1")]);
    }

    #[test]
    fn a_table_on_a_healthy_nat_of_its_zone_stays_even_when_unbalanced() {
        let nats = [instance("i-a1", A), instance("i-a2", A)];
        let mut tables: Vec<_> = (1..=3).map(|n| table(&format!("rtb-{n}"), A, via("i-a1"))).collect();
        tables.push(table("rtb-4", A, DefaultRoute::Missing));
        let plan = plan(&tables, &nats, &settings(), NOW);
        assert!(plan.tables[..3].iter().all(|d| d.reason == Reason::Keep && d.route_change.is_none()));
        assert_eq!(decision(&plan, "rtb-4").route_change, Some(RouteChange::Create { nat: to("i-a2") }));
    }

    #[test]
    fn a_table_that_moves_away_frees_its_place_on_the_old_nat() {
        // rtb-a fails back off i-b1 first (zone a chooses first), so i-b1 is as
        // empty as i-d1 for rtb-c.
        let nats =
            [instance("i-a1", A), instance("i-b1", B), stopped(instance("i-c1", C)), instance("i-d1", "us-east-1d")];
        let tables = [tagged(table("rtb-a", A, via("i-b1")), NOW - 600), table("rtb-c", C, via("i-c1"))];
        let plan = plan(&tables, &nats, &settings(), NOW);
        assert_eq!(decision(&plan, "rtb-a").route_change, replace("eni-b1", "i-a1"));
        assert_eq!(decision(&plan, "rtb-c").route_change, replace("eni-c1", "i-b1"));
    }

    #[test]
    fn failback_waits_for_the_home_nat_to_be_healthy_for_failback_seconds() {
        let held = |healthy_for_s| Reason::FailBackHeld { healthy_for_s, needed_s: 300 };
        let back = replace("eni-b1", "i-a1");
        let cases = [
            ("first healthy sight starts the clock", 300, None, held(0), None, Some(TagChange::Set(NOW))),
            ("not yet", 300, Some(NOW - 299), held(299), None, None),
            (
                "exactly due",
                300,
                Some(NOW - 300),
                Reason::FailBack { healthy_for_s: 300 },
                back.clone(),
                Some(TagChange::Clear),
            ),
            (
                // Overdue (earlier failback writes failed), within twice the
                // hold and ten minutes.
                "long due",
                300,
                Some(NOW - 1000),
                Reason::FailBack { healthy_for_s: 1000 },
                back.clone(),
                Some(TagChange::Clear),
            ),
            ("zero moves at first sight", 0, None, Reason::FailBack { healthy_for_s: 0 }, back.clone(), None),
            (
                "zero with a clock",
                0,
                Some(NOW - 10),
                Reason::FailBack { healthy_for_s: 10 },
                back,
                Some(TagChange::Clear),
            ),
            ("a clock from the future restarts", 300, Some(NOW + 60), held(0), None, Some(TagChange::Set(NOW))),
        ];
        for (case, failback_seconds, since, reason, route_change, tag_change) in cases {
            let nats = [instance("i-a1", A), instance("i-b1", B)];
            let mut rtb = table("rtb-a", A, via("i-b1"));
            rtb.home_healthy_since = since;
            let plan = plan(&[rtb], &nats, &Settings { failback_seconds, ..settings() }, NOW);
            let d = decision(&plan, "rtb-a");
            assert_eq!((&d.reason, &d.route_change, d.tag_change), (&reason, &route_change, tag_change), "{case}");
            assert_eq!(plan.failed_back(), usize::from(route_change.is_some()), "{case}");
        }
    }

    #[test]
    fn a_failed_over_table_stays_and_its_clock_stops_while_its_zone_has_no_healthy_nat() {
        let cases = [("home NAT stopped", vec![stopped(instance("i-a1", A))]), ("no NAT in the zone", vec![])];
        for (case, home) in cases {
            let mut nats = home;
            nats.push(instance("i-b1", B));
            let plan = plan(&[tagged(table("rtb-a", A, via("i-b1")), NOW - 100)], &nats, &settings(), NOW);
            let d = decision(&plan, "rtb-a");
            assert_eq!(
                (&d.reason, &d.route_change, d.tag_change),
                (&Reason::HeldNoHomeNat, &None, Some(TagChange::Clear))
            );
            assert_eq!(chosen(d), Some("i-b1"), "{case}");
        }
    }

    #[test]
    fn a_table_on_an_unhealthy_foreign_nat_moves_home_at_once() {
        let nats = [instance("i-a1", A), stopped(instance("i-b1", B)), instance("i-c1", C)];
        let plan = plan(&[table("rtb-a", A, via("i-b1"))], &nats, &settings(), NOW);
        let d = decision(&plan, "rtb-a");
        assert_eq!(d.route_change, replace("eni-b1", "i-a1"));
        assert_eq!(d.reason, Reason::FailOver { from_health_reason: "state stopped".into() });
        assert_eq!(d.tag_change, None);
    }

    /// Runs the planner every `step` seconds, the home NAT healthy when
    /// `home_healthy(run)`, applying each plan; returns the NAT the table is on
    /// after each run.
    fn simulate(runs: u64, step: u64, home_healthy: impl Fn(u64) -> bool) -> Vec<String> {
        let mut tables = [table("rtb-a", A, via("i-a1"))];
        (0..runs)
            .map(|run| {
                let home = if home_healthy(run) { instance("i-a1", A) } else { stopped(instance("i-a1", A)) };
                let plan = plan(&tables, &[home, instance("i-b1", B)], &settings(), NOW + run * step);
                apply(&mut tables, &plan);
                tables[0].default_route.target_id().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn a_flapping_home_nat_never_gets_its_tables_back() {
        let route = simulate(30, 60, |run| run % 2 == 1);
        assert!(route.iter().all(|r| r == "eni-b1"), "{route:?}");
    }

    #[test]
    fn a_home_nat_healthy_again_gets_its_tables_back_after_failback_seconds() {
        // Bad at t=0, healthy from t=60: the clock starts at 60 and the table
        // moves at 360, the sixth run.
        let route = simulate(10, 60, |run| run > 0);
        let expected: Vec<_> = (0..10).map(|run| if run < 6 { "eni-b1" } else { "eni-a1" }).collect();
        assert_eq!(route, expected);
    }

    #[test]
    fn with_no_healthy_nat_anywhere_nothing_changes() {
        let nats = [stopped(instance("i-a1", A)), gateway("nat-b1", B, "failed"), regional("nat-r", "available")];
        let tables = [
            table("rtb-a", A, via("i-a1")),
            table("rtb-b", B, DefaultRoute::Missing),
            table("rtb-c", C, DefaultRoute::Blackhole("eni-gone".into())),
        ];
        let plan = plan(&tables, &nats, &settings(), NOW);
        assert!(plan.tables.iter().all(|d| d.reason == Reason::NoHealthyNat && d.chosen.is_none()));
        assert!(plan.is_empty());
        assert_eq!((plan.without_healthy_nat(), plan.healthy_nats(), plan.unhealthy_nats()), (3, 0, 2));
    }

    #[test]
    fn tables_through_a_regional_gateway_are_left_alone_whatever_its_health() {
        for state in ["available", "deleted"] {
            for route in [via("nat-r"), DefaultRoute::Blackhole("nat-r".into())] {
                let nats = [regional("nat-r", state), instance("i-a1", A)];
                let plan = plan(&[tagged(table("rtb-a", A, route.clone()), NOW - 1)], &nats, &settings(), NOW);
                let d = decision(&plan, "rtb-a");
                let why = Reason::LeftAlone(LeftAlone::RegionalNatGateway { id: "nat-r".into() });
                assert_eq!((&d.reason, &d.route_change, d.tag_change), (&why, &None, None), "{state} {route:?}");
            }
        }
    }

    #[test]
    fn a_regional_gateway_is_never_chosen() {
        let nats = [regional("nat-r", "available"), stopped(instance("i-a1", A))];
        let plan =
            plan(&[table("rtb-a", A, via("i-a1")), table("rtb-b", B, DefaultRoute::Missing)], &nats, &settings(), NOW);
        assert!(plan.tables.iter().all(|d| d.reason == Reason::NoHealthyNat && d.route_change.is_none()));
    }

    fn fallback() -> Settings {
        Settings { regional_fallback: true, ..settings() }
    }

    #[test]
    fn with_the_fallback_a_dark_zone_goes_to_the_regional_gateway_before_another_zone_s_nat() {
        // The other zone's NAT carries nothing and the regional gateway one
        // table: load does not outrank the rule.
        let nats = [stopped(instance("i-a1", A)), instance("i-b1", B), regional("nat-r", "available")];
        let tables = [table("rtb-a", A, via("i-a1")), table("rtb-c", C, via("nat-r"))];
        let plan = plan(&tables, &nats, &fallback(), NOW);
        let d = decision(&plan, "rtb-a");
        assert_eq!(d.route_change, replace("eni-a1", "nat-r"));
        assert_eq!(d.reason, Reason::RegionalFallback { from_health_reason: "state stopped".into() });
        assert_eq!(d.reason.to_string(), "regional fallback");
        assert_eq!(plan.failed_over(), 1);
        // A table on the regional gateway whose zone has no NAT of its own
        // stays on it.
        let c = decision(&plan, "rtb-c");
        assert_eq!((chosen(c), &c.route_change), (Some("nat-r"), &None));
        assert!(d.to_string().contains("-> nat-r (regional): regional fallback"), "{d}");
    }

    #[test]
    fn with_the_fallback_a_table_held_on_another_zone_s_nat_moves_to_the_regional_gateway() {
        let nats = [stopped(instance("i-a1", A)), instance("i-b1", B), regional("nat-r", "available")];
        let plan = plan(&[table("rtb-a", A, via("i-b1"))], &nats, &fallback(), NOW);
        let d = decision(&plan, "rtb-a");
        assert_eq!(d.route_change, replace("eni-b1", "nat-r"));
        assert!(matches!(d.reason, Reason::RegionalFallback { .. }), "{:?}", d.reason);
    }

    #[test]
    fn with_the_fallback_a_new_route_in_a_dark_zone_goes_to_the_regional_gateway() {
        let nats = [instance("i-b1", B), regional("nat-r", "available")];
        let plan = plan(&[table("rtb-a", A, DefaultRoute::Missing)], &nats, &fallback(), NOW);
        let d = decision(&plan, "rtb-a");
        assert_eq!(d.route_change, Some(RouteChange::Create { nat: to("nat-r") }));
    }

    #[test]
    fn with_the_fallback_a_regional_gateway_that_is_not_available_is_passed_over() {
        for state in ["pending", "failed", "deleting", "deleted"] {
            let nats = [stopped(instance("i-a1", A)), instance("i-b1", B), regional("nat-r", state)];
            let plan = plan(&[table("rtb-a", A, via("i-a1"))], &nats, &fallback(), NOW);
            let d = decision(&plan, "rtb-a");
            assert_eq!(d.route_change, replace("eni-a1", "i-b1"), "{state}");
            assert!(matches!(d.reason, Reason::FailOver { .. }), "{state}: {:?}", d.reason);
        }
    }

    #[test]
    fn with_the_fallback_a_table_on_the_regional_gateway_fails_back_under_the_hold() {
        let nats = [instance("i-a1", A), regional("nat-r", "available")];
        let held = plan(&[tagged(table("rtb-a", A, via("nat-r")), NOW - 100)], &nats, &fallback(), NOW);
        let d = decision(&held, "rtb-a");
        assert_eq!((&d.route_change, &d.reason), (&None, &Reason::FailBackHeld { healthy_for_s: 100, needed_s: 300 }));
        let back = plan(&[tagged(table("rtb-a", A, via("nat-r")), NOW - 300)], &nats, &fallback(), NOW);
        let d = decision(&back, "rtb-a");
        assert_eq!(d.route_change, replace("nat-r", "i-a1"));
        assert_eq!((&d.reason, d.tag_change), (&Reason::FailBack { healthy_for_s: 300 }, Some(TagChange::Clear)));
        // The clock starts at the first sight of a healthy home NAT.
        let first = plan(&[table("rtb-a", A, via("nat-r"))], &nats, &fallback(), NOW);
        assert_eq!(decision(&first, "rtb-a").tag_change, Some(TagChange::Set(NOW)));
    }

    #[test]
    fn without_the_fallback_the_regional_gateway_changes_nothing() {
        let nats = [stopped(instance("i-a1", A)), instance("i-b1", B), regional("nat-r", "available")];
        let tables = [table("rtb-a", A, via("i-a1")), table("rtb-c", C, via("nat-r"))];
        let plan = plan(&tables, &nats, &settings(), NOW);
        assert_eq!(decision(&plan, "rtb-a").route_change, replace("eni-a1", "i-b1"));
        let c = decision(&plan, "rtb-c");
        assert_eq!(c.reason, Reason::LeftAlone(LeftAlone::RegionalNatGateway { id: "nat-r".into() }));
    }

    #[test]
    fn tables_without_one_zone_or_through_a_non_nat_target_are_left_alone() {
        let igw = DefaultRoute::Other { kind: "internet gateway".into(), id: "igw-1".into() };
        let cases = [
            ("no zone", TableZone::None, via("i-a1"), LeftAlone::NoZone),
            ("no zone, no route", TableZone::None, DefaultRoute::Missing, LeftAlone::NoZone),
            ("several zones", TableZone::Several(vec![A.into(), B.into()]), via("i-a1"), LeftAlone::SeveralZones),
            (
                "through an internet gateway",
                TableZone::Zone(A.into()),
                igw,
                LeftAlone::NotThroughNat { kind: "internet gateway".into(), id: "igw-1".into() },
            ),
        ];
        for (case, zone, default_route, why) in cases {
            let rtb =
                EgressTable { id: "rtb-x".into(), name: None, zone, default_route, home_healthy_since: Some(NOW) };
            let nats = [stopped(instance("i-a1", A)), instance("i-b1", B)];
            let plan = plan(&[rtb], &nats, &settings(), NOW);
            let d = decision(&plan, "rtb-x");
            let expected = (&Reason::LeftAlone(why), &None, None, &None);
            assert_eq!((&d.reason, &d.route_change, d.tag_change, &d.chosen), expected, "{case}");
            assert_eq!(plan.left_alone(), 1, "{case}");
        }
    }

    #[test]
    fn a_table_without_a_default_route_gets_one() {
        let nats = [gateway("nat-a1", A, "available"), instance("i-b1", B)];
        let tables = [table("rtb-a", A, DefaultRoute::Missing), table("rtb-c", C, DefaultRoute::Missing)];
        let plan = plan(&tables, &nats, &settings(), NOW);
        for (table_id, nat_id) in [("rtb-a", "nat-a1"), ("rtb-c", "i-b1")] {
            let d = decision(&plan, table_id);
            assert_eq!(d.reason, Reason::NewRoute);
            assert_eq!(d.route_change, Some(RouteChange::Create { nat: to(nat_id) }), "{table_id}");
        }
    }

    #[test]
    fn an_instance_with_no_known_interface_is_routed_by_instance_id() {
        let mut a1 = instance("i-a1", A);
        if let NatKind::Instance { eni_ids, .. } = &mut a1.kind {
            eni_ids.clear();
        }
        let plan = plan(&[table("rtb-a", A, DefaultRoute::Missing)], &[a1], &settings(), NOW);
        let expected = RouteChange::Create { nat: NatTarget::Instance("i-a1".into()) };
        assert_eq!(decision(&plan, "rtb-a").route_change, Some(expected));
    }

    #[test]
    fn a_nat_whose_source_dest_check_is_on_carries_no_table_until_its_fix_succeeded() {
        let on = |nat| with(nat, |f| f.source_dest_check = Some(true));
        let mut nats = vec![on(instance("i-a2", A)), on(instance("i-a1", A)), stopped(on(instance("i-b1", B)))];
        let tables = [table("rtb-a", A, via("i-a1")), table("rtb-new", A, DefaultRoute::Missing)];
        let plan = plan(&tables, &nats, &settings(), NOW);
        assert_eq!(plan.source_dest_fixes, ["i-a1", "i-a2"], "stopped instances are not fixed");
        for id in ["rtb-a", "rtb-new"] {
            let d = decision(&plan, id);
            assert_eq!((&d.reason, d.route_change.as_ref()), (&Reason::NoHealthyNat, None), "{id}");
        }
        assert!(!plan.is_empty());

        // The fix of i-a2 went through, i-a1's did not: rtb-a leaves i-a1 for
        // i-a2, the new table goes there too.
        with_source_dest_fixed(&mut nats, &["i-a2"]);
        let plan = super::plan(&tables, &nats, &settings(), NOW);
        assert_eq!(plan.source_dest_fixes, ["i-a1"]);
        assert_eq!(decision(&plan, "rtb-a").route_change, replace("eni-a1", "i-a2"));
        assert_eq!(decision(&plan, "rtb-new").route_change, Some(RouteChange::Create { nat: to("i-a2") }));

        let no_fix = Settings { fix_source_dest_check: false, ..settings() };
        let plan = super::plan(&tables, &nats, &no_fix, NOW);
        assert!(plan.source_dest_fixes.is_empty());
    }

    #[test]
    fn a_default_route_through_a_next_hop_that_is_not_an_enrolled_nat_is_left_alone() {
        let nats = [stopped(instance("i-a1", A)), instance("i-b1", B)];
        let cases = [
            (DefaultRoute::Instance("i-firewall".into()), "instance i-firewall"),
            (DefaultRoute::NetworkInterface("eni-proxy".into()), "network interface eni-proxy"),
            (DefaultRoute::NatGateway("nat-other-router".into()), "NAT gateway nat-other-router"),
            (DefaultRoute::Other { kind: "transit gateway".into(), id: "tgw-1".into() }, "transit gateway tgw-1"),
            (
                DefaultRoute::Other { kind: "blackholed gateway load balancer endpoint".into(), id: "vpce-1".into() },
                "blackholed gateway load balancer endpoint vpce-1",
            ),
        ];
        for (route, what) in cases {
            let plan = plan(&[table("rtb-a", A, route)], &nats, &settings(), NOW);
            let d = decision(&plan, "rtb-a");
            assert!(matches!(d.reason, Reason::LeftAlone(_)), "{what}: {d}");
            assert!(d.to_string().contains(what), "{what}: {d}");
            assert_eq!((d.route_change.as_ref(), d.tag_change), (None, None), "{what}");
            assert_eq!(plan.left_alone(), 1, "{what}");
            assert!(plan.is_empty(), "{what}");
        }
    }

    #[test]
    fn the_plan_prints_one_line_per_fix_and_per_table() {
        let nats = [
            stopped(instance("i-0aaa", A)),
            instance("i-0bbb", B),
            gateway("nat-0ccc", C, "available"),
            gateway("nat-0ddd", "us-east-1d", "available"),
            instance("i-0eee", "us-east-1e"),
            regional("nat-0rrr", "available"),
            with(instance("i-0fff", "us-east-1f"), |f| f.source_dest_check = Some(true)),
        ];
        let mut named = table("rtb-0c", C, via("nat-0ccc"));
        named.name = Some("private-c".into());
        let tables = [
            table("rtb-0a", A, DefaultRoute::Instance("i-0aaa".into())),
            named,
            table("rtb-0d", "us-east-1d", DefaultRoute::Missing),
            EgressTable { zone: TableZone::None, ..table("rtb-0e", A, via("i-0bbb")) },
            table("rtb-0f", "us-east-1f", DefaultRoute::Other { kind: "igw".into(), id: "igw-0f".into() }),
            table("rtb-0g", "us-east-1g", via("nat-0rrr")),
            table("rtb-0h", "us-east-1e", via("i-0bbb")),
            table("rtb-0i", "us-east-1b", DefaultRoute::Blackhole("eni-0gone".into())),
            tagged(table("rtb-0j", "us-east-1e", via("nat-0ccc")), NOW - 400),
        ];
        let plan = plan(&tables, &nats, &settings(), NOW);
        let expected = "\
~ i-0fff: source/destination check off
. rtb-0e (-): left alone: no zone (tag the table with its zone or associate a subnet)
~ rtb-0a (us-east-1a): i-0aaa (unhealthy: state stopped) -> nat-0ddd (us-east-1d): fail over
~ rtb-0i (us-east-1b): eni-0gone (unhealthy: route is a blackhole) -> eni-0bbb (i-0bbb): fail over
= rtb-0c \"private-c\" (us-east-1c): nat-0ccc (healthy): own zone's NAT is healthy
+ rtb-0d (us-east-1d): no default route -> nat-0ddd: new default route
= rtb-0h (us-east-1e): eni-0bbb (i-0bbb, us-east-1b, healthy): fail back held: own zone's NAT healthy for 0 s of 300 s; failback clock set to 1700000000
~ rtb-0j (us-east-1e): nat-0ccc (us-east-1c, healthy) -> eni-0eee (i-0eee): fail back: own zone's NAT healthy for 400 s; failback clock cleared
. rtb-0f (us-east-1f): left alone: through igw igw-0f, not a NAT
. rtb-0g (us-east-1g): left alone: through regional NAT gateway nat-0rrr
";
        assert_eq!(plan.to_string(), expected);

        let nothing = super::plan(
            &[table("rtb-0a", A, DefaultRoute::Missing)],
            &[stopped(instance("i-0aaa", A))],
            &settings(),
            NOW,
        );
        assert_eq!(nothing.to_string(), "? rtb-0a (us-east-1a): no default route: no healthy NAT anywhere\n");
    }

    #[test]
    fn the_counters_sum_up_the_decisions() {
        let nats =
            [stopped(instance("i-a1", A)), instance("i-b1", B), instance("i-c1", C), regional("nat-r", "deleted")];
        let tables = [
            table("rtb-a", A, via("i-a1")),
            tagged(table("rtb-b", B, via("i-c1")), NOW - 300),
            table("rtb-c", C, via("i-c1")),
            table("rtb-r", C, via("nat-r")),
        ];
        let plan = plan(&tables, &nats, &settings(), NOW);
        assert_eq!(
            (plan.failed_over(), plan.failed_back(), plan.without_healthy_nat(), plan.left_alone()),
            (1, 1, 0, 1)
        );
        assert_eq!((plan.healthy_nats(), plan.unhealthy_nats()), (2, 1));
        let changed: Vec<_> = plan.route_changes().map(|(id, _)| id).collect();
        assert_eq!(changed, ["rtb-a", "rtb-b"]);
    }
}
