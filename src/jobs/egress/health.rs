//! Whether a NAT can carry a zone's egress, judged from the facts observe
//! gathered. Pure.

use std::fmt;

use serde::Serialize;

use crate::jobs::egress::model::{Nat, NatInstanceFacts, NatKind, ProbeResult, Settings};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Health {
    Healthy,
    /// The reason, for people.
    Unhealthy(String),
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Unhealthy(reason) => Some(reason),
        }
    }

    pub(crate) fn unhealthy(reason: impl Into<String>) -> Self {
        Health::Unhealthy(reason.into())
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Unhealthy(reason) => write!(f, "unhealthy: {reason}"),
        }
    }
}

/// Regional gateways get a health too (for the report), though the planner
/// never routes a table to one.
pub fn evaluate(nat: &Nat, settings: &Settings) -> Health {
    match &nat.kind {
        NatKind::Gateway { facts, .. } if facts.state == "available" => Health::Healthy,
        NatKind::Gateway { facts, .. } => Health::unhealthy(format!("state {}", facts.state)),
        NatKind::Instance { facts, private_ip, .. } => evaluate_instance(facts, private_ip.is_some(), settings),
    }
}

fn evaluate_instance(facts: &NatInstanceFacts, has_private_ip: bool, settings: &Settings) -> Health {
    if facts.state != "running" {
        return Health::unhealthy(format!("state {}", facts.state));
    }
    // Rule 5: a NAT that EC2 will take away counts unhealthy while it still
    // forwards, so its tables move in time.
    if let Some(leaving) = &facts.leaving {
        return Health::unhealthy(leaving.to_string());
    }
    // Only a definite "impaired" counts: initializing, insufficient-data or no
    // answer are unknowns, and failing over on an unknown would move every
    // table each time EC2 is slow to report on a fresh instance.
    for (check, status) in [("system", &facts.system_status), ("instance", &facts.instance_status)] {
        if status.as_deref() == Some("impaired") {
            return Health::unhealthy(format!("{check} status check impaired"));
        }
    }
    // Rule 1: an instance with the check on drops what it should forward. The
    // fix (when allowed) runs before any route is planned, and only a fix that
    // succeeded turns these facts to "off".
    if facts.source_dest_check == Some(true) {
        return Health::unhealthy("source/destination check is on");
    }
    if settings.probe_enabled {
        // Probing is the operator's explicit ask: an instance that could not be
        // probed has not proved itself.
        match &facts.probe {
            Some(ProbeResult::Answered) => {}
            Some(ProbeResult::Failed(why)) => return Health::unhealthy(format!("probe failed: {why}")),
            None if !has_private_ip => return Health::unhealthy("not probed: no private address"),
            None => return Health::unhealthy("not probed"),
        }
    }
    Health::Healthy
}

/// Only running instances: a stopped one cannot take the attribute change
/// usefully, and is unhealthy anyway.
pub fn needs_source_dest_fix(nat: &Nat, settings: &Settings) -> bool {
    settings.fix_source_dest_check
        && matches!(&nat.kind, NatKind::Instance { facts, .. }
            if facts.state == "running" && facts.source_dest_check == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ec2::model::Leaving;
    use crate::jobs::egress::model::NatGatewayFacts;

    fn settings(fix: bool, probe: bool) -> Settings {
        Settings { failback_seconds: 300, fix_source_dest_check: fix, probe_enabled: probe, regional_fallback: false }
    }

    fn running() -> NatInstanceFacts {
        NatInstanceFacts {
            state: "running".into(),
            system_status: Some("ok".into()),
            instance_status: Some("ok".into()),
            source_dest_check: Some(false),
            probe: Some(ProbeResult::Answered),
            leaving: None,
        }
    }

    fn instance(facts: NatInstanceFacts) -> Nat {
        let kind = NatKind::Instance { eni_ids: vec!["eni-1".into()], private_ip: Some("10.0.0.5".into()), facts };
        Nat { id: "i-1".into(), zone: Some("us-east-1a".into()), kind }
    }

    fn gateway(state: &str) -> Nat {
        let kind = NatKind::Gateway { regional: false, facts: NatGatewayFacts { state: state.into() } };
        Nat { id: "nat-1".into(), zone: Some("us-east-1a".into()), kind }
    }

    fn with(change: impl FnOnce(&mut NatInstanceFacts)) -> NatInstanceFacts {
        let mut facts = running();
        change(&mut facts);
        facts
    }

    fn unhealthy(reason: &str) -> Health {
        Health::Unhealthy(reason.into())
    }

    #[test]
    fn instance_health_follows_state_status_checks_source_dest_check_and_probe() {
        let s = |v: &str| Some(v.to_string());
        let cases = [
            ("all good", with(|_| {}), settings(true, true), Health::Healthy),
            ("stopped", with(|f| f.state = "stopped".into()), settings(true, false), unhealthy("state stopped")),
            ("pending", with(|f| f.state = "pending".into()), settings(true, false), unhealthy("state pending")),
            (
                "Spot interruption warning",
                with(|f| f.leaving = Some(Leaving::SpotInterruption)),
                settings(true, true),
                unhealthy("leaving: Spot interruption warning"),
            ),
            (
                "scheduled retirement",
                with(|f| {
                    f.leaving = Some(Leaving::Scheduled {
                        code: "instance-retirement".into(),
                        not_before: Some("2026-12-09T00:00:00Z".into()),
                    })
                }),
                settings(true, false),
                unhealthy("leaving: scheduled instance-retirement from 2026-12-09T00:00:00Z"),
            ),
            (
                "system impaired",
                with(|f| f.system_status = s("impaired")),
                settings(true, false),
                unhealthy("system status check impaired"),
            ),
            (
                "instance impaired",
                with(|f| f.instance_status = s("impaired")),
                settings(true, false),
                unhealthy("instance status check impaired"),
            ),
            ("initializing", with(|f| f.instance_status = s("initializing")), settings(true, false), Health::Healthy),
            (
                "insufficient data",
                with(|f| f.system_status = s("insufficient-data")),
                settings(true, false),
                Health::Healthy,
            ),
            ("not applicable", with(|f| f.system_status = s("not-applicable")), settings(true, false), Health::Healthy),
            (
                "no status at all",
                with(|f| (f.system_status, f.instance_status) = (None, None)),
                settings(true, false),
                Health::Healthy,
            ),
            (
                // The fix is allowed but has not been made (or failed): it
                // cannot forward yet.
                "check on, fix allowed",
                with(|f| f.source_dest_check = Some(true)),
                settings(true, false),
                unhealthy("source/destination check is on"),
            ),
            (
                "check on, fix not allowed",
                with(|f| f.source_dest_check = Some(true)),
                settings(false, false),
                unhealthy("source/destination check is on"),
            ),
            ("check unknown", with(|f| f.source_dest_check = None), settings(false, false), Health::Healthy),
            (
                "probe failed",
                with(|f| f.probe = Some(ProbeResult::Failed("connection refused".into()))),
                settings(true, true),
                unhealthy("probe failed: connection refused"),
            ),
            ("not probed", with(|f| f.probe = None), settings(true, true), unhealthy("not probed")),
            (
                "probe failed, probing off",
                with(|f| f.probe = Some(ProbeResult::Failed("timeout".into()))),
                settings(true, false),
                Health::Healthy,
            ),
            ("stopped wins", with(|f| f.state = "stopped".into()), settings(true, true), unhealthy("state stopped")),
        ];
        for (case, facts, settings, expected) in cases {
            assert_eq!(evaluate(&instance(facts), &settings), expected, "{case}");
        }
    }

    #[test]
    fn an_instance_without_a_private_address_cannot_be_probed_and_is_unhealthy_when_probing() {
        let mut nat = instance(with(|f| f.probe = None));
        if let NatKind::Instance { private_ip, .. } = &mut nat.kind {
            *private_ip = None;
        }
        assert_eq!(evaluate(&nat, &settings(true, true)), unhealthy("not probed: no private address"));
        assert_eq!(evaluate(&nat, &settings(true, false)), Health::Healthy);
    }

    #[test]
    fn a_gateway_is_healthy_only_when_available() {
        for (state, expected) in [
            ("available", Health::Healthy),
            ("pending", unhealthy("state pending")),
            ("deleting", unhealthy("state deleting")),
            ("deleted", unhealthy("state deleted")),
            ("failed", unhealthy("state failed")),
        ] {
            assert_eq!(evaluate(&gateway(state), &settings(true, true)), expected, "{state}");
        }
    }

    #[test]
    fn the_source_dest_fix_is_wanted_for_running_instances_with_the_check_on_when_enabled() {
        let cases = [
            ("on, running, fix enabled", with(|f| f.source_dest_check = Some(true)), true, true),
            ("on, running, fix disabled", with(|f| f.source_dest_check = Some(true)), false, false),
            ("on, stopped", with(|f| (f.state, f.source_dest_check) = ("stopped".into(), Some(true))), true, false),
            ("off", with(|_| {}), true, false),
            ("unknown", with(|f| f.source_dest_check = None), true, false),
        ];
        for (case, facts, fix, expected) in cases {
            assert_eq!(needs_source_dest_fix(&instance(facts), &settings(fix, false)), expected, "{case}");
        }
        assert!(!needs_source_dest_fix(&gateway("available"), &settings(true, false)));
    }

    #[test]
    fn health_prints_as_healthy_or_unhealthy_with_its_reason() {
        assert_eq!(Health::Healthy.to_string(), "healthy");
        assert_eq!(unhealthy("state stopped").to_string(), "unhealthy: state stopped");
    }
}
