//! Domain types of the egress job: the enrolled NATs with the facts observe
//! gathered about them, the enrolled route tables with their default route, and
//! the settings the planner needs. Free of any AWS SDK type.

use std::fmt;

use serde::Serialize;

/// An Availability Zone name such as `us-east-1a`.
pub type Zone = String;

/// An enrolled NAT instance or NAT gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nat {
    pub id: String,
    /// The zone tag, else its Availability Zone (a gateway's: its subnet's).
    /// None for a regional gateway.
    pub zone: Option<Zone>,
    pub kind: NatKind,
}

/// The kind carries its own facts, so that an instance can never hold a
/// gateway's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatKind {
    Instance {
        /// Primary first: routes go to the primary interface, since
        /// `InstanceId` is refused for multi-ENI instances.
        eni_ids: Vec<String>,
        private_ip: Option<String>,
        facts: NatInstanceFacts,
    },
    Gateway {
        /// Serves every zone: never a failover target, and tables routed
        /// through it are left alone.
        regional: bool,
        facts: NatGatewayFacts,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatInstanceFacts {
    /// EC2 state name: `pending`, `running`, `stopping`, `stopped`, ...
    pub state: String,
    /// `ok`, `impaired`, `initializing`, `insufficient-data`, `not-applicable`;
    /// None when EC2 said nothing. Observe asks EC2 for the impaired instances
    /// only (the one status the rule acts on), so it sets `impaired` or None.
    pub system_status: Option<String>,
    pub instance_status: Option<String>,
    pub source_dest_check: Option<bool>,
    /// None when no probe was made (probing off, or nothing to probe).
    pub probe: Option<ProbeResult>,
    /// EC2 has said the instance will go (rule 5).
    pub leaving: Option<crate::aws::ec2::model::Leaving>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Answered,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatGatewayFacts {
    /// `pending`, `available`, `deleting`, `deleted` or `failed`.
    pub state: String,
}

impl Nat {
    pub fn is_regional(&self) -> bool {
        matches!(self.kind, NatKind::Gateway { regional: true, .. })
    }

    pub fn eni_ids(&self) -> &[String] {
        match &self.kind {
            NatKind::Instance { eni_ids, .. } => eni_ids,
            NatKind::Gateway { .. } => &[],
        }
    }

    /// What a route to this NAT should name.
    pub fn target(&self) -> NatTarget {
        match (&self.kind, self.eni_ids().first()) {
            (NatKind::Instance { .. }, Some(eni)) => NatTarget::NetworkInterface(eni.clone()),
            (NatKind::Instance { .. }, None) => NatTarget::Instance(self.id.clone()),
            (NatKind::Gateway { .. }, _) => NatTarget::NatGateway(self.id.clone()),
        }
    }

    /// Whether a route target id (as a route or a blackhole shows it) means
    /// this NAT: a route made by instance id and one made through any of its
    /// interfaces both go through the same NAT.
    pub fn is_named_by(&self, route: &DefaultRoute) -> bool {
        match (route, &self.kind) {
            (DefaultRoute::Instance(id), NatKind::Instance { .. })
            | (DefaultRoute::NatGateway(id), NatKind::Gateway { .. }) => *id == self.id,
            (DefaultRoute::NetworkInterface(eni), NatKind::Instance { eni_ids, .. }) => eni_ids.contains(eni),
            (DefaultRoute::Blackhole(id), _) => *id == self.id || self.eni_ids().contains(id),
            _ => false,
        }
    }
}

/// Where a route to a NAT points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum NatTarget {
    NetworkInterface(String),
    /// Only for an instance whose interfaces are unknown.
    Instance(String),
    NatGateway(String),
}

impl NatTarget {
    pub fn id(&self) -> &str {
        match self {
            NatTarget::NetworkInterface(id) | NatTarget::Instance(id) | NatTarget::NatGateway(id) => id,
        }
    }
}

impl fmt::Display for NatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// An enrolled route table, as far as its default route is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressTable {
    pub id: String,
    /// The `Name` tag, for people.
    pub name: Option<String>,
    pub zone: TableZone,
    pub default_route: DefaultRoute,
    /// Since when (epoch seconds) the table's zone has had a healthy NAT while
    /// the table stayed failed over: the failback clock, kept by the previous
    /// invocation in a tag on the table.
    pub home_healthy_since: Option<u64>,
}

/// A table's zone: its zone tag, else the one zone of its associated subnets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TableZone {
    Zone(Zone),
    /// No zone tag and no associated subnet.
    None,
    /// Untagged, with subnets in several zones.
    Several(Vec<Zone>),
}

impl TableZone {
    pub fn zone(&self) -> Option<&str> {
        match self {
            TableZone::Zone(zone) => Some(zone),
            TableZone::None | TableZone::Several(_) => None,
        }
    }
}

impl fmt::Display for TableZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableZone::Zone(zone) => f.write_str(zone),
            TableZone::None => f.write_str("-"),
            TableZone::Several(zones) => f.write_str(&zones.join(",")),
        }
    }
}

/// The table's route for the egress destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefaultRoute {
    Missing,
    Instance(String),
    NetworkInterface(String),
    NatGateway(String),
    /// Through something that is not a NAT (internet, transit or virtual
    /// private gateway, peering, endpoint, ...).
    Other {
        kind: String,
        id: String,
    },
    /// Its target is gone or stopped; the id is the target the route still
    /// names.
    Blackhole(String),
}

impl DefaultRoute {
    /// The target id as the route shows it.
    pub fn target_id(&self) -> Option<&str> {
        match self {
            DefaultRoute::Missing => None,
            DefaultRoute::Instance(id)
            | DefaultRoute::NetworkInterface(id)
            | DefaultRoute::NatGateway(id)
            | DefaultRoute::Other { id, .. }
            | DefaultRoute::Blackhole(id) => Some(id),
        }
    }
}

impl From<&NatTarget> for DefaultRoute {
    fn from(target: &NatTarget) -> Self {
        match target.clone() {
            NatTarget::NetworkInterface(id) => DefaultRoute::NetworkInterface(id),
            NatTarget::Instance(id) => DefaultRoute::Instance(id),
            NatTarget::NatGateway(id) => DefaultRoute::NatGateway(id),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long a zone's NAT must have been healthy before failed-over tables
    /// move back; 0: at first healthy sight.
    pub failback_seconds: u64,
    /// Turn the source/destination check off on NAT instances instead of
    /// counting them unhealthy.
    pub fix_source_dest_check: bool,
    /// A TCP probe result is expected for every NAT instance.
    pub probe_enabled: bool,
    /// An enrolled regional NAT gateway is the fallback of a zone without a
    /// healthy NAT (`EGRESS_REGIONAL_FALLBACK`).
    pub regional_fallback: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(eni_ids: &[&str]) -> Nat {
        let facts = NatInstanceFacts {
            state: "running".into(),
            system_status: None,
            instance_status: None,
            source_dest_check: Some(false),
            probe: None,
            leaving: None,
        };
        let eni_ids = eni_ids.iter().map(|e| e.to_string()).collect();
        Nat {
            id: "i-1".into(),
            zone: Some("us-east-1a".into()),
            kind: NatKind::Instance { eni_ids, private_ip: None, facts },
        }
    }

    fn gateway(regional: bool) -> Nat {
        let facts = NatGatewayFacts { state: "available".into() };
        Nat { id: "nat-1".into(), zone: None, kind: NatKind::Gateway { regional, facts } }
    }

    #[test]
    fn routes_to_an_instance_name_its_primary_interface_or_the_instance_when_none_is_known() {
        assert_eq!(instance(&["eni-p", "eni-s"]).target(), NatTarget::NetworkInterface("eni-p".into()));
        assert_eq!(instance(&[]).target(), NatTarget::Instance("i-1".into()));
        assert_eq!(gateway(false).target(), NatTarget::NatGateway("nat-1".into()));
    }

    #[test]
    fn a_nat_is_named_by_its_id_or_any_of_its_interfaces_but_never_across_kinds() {
        let nat = instance(&["eni-p", "eni-s"]);
        let cases = [
            (DefaultRoute::Instance("i-1".into()), true),
            (DefaultRoute::NetworkInterface("eni-p".into()), true),
            (DefaultRoute::NetworkInterface("eni-s".into()), true),
            (DefaultRoute::NetworkInterface("eni-x".into()), false),
            (DefaultRoute::NatGateway("i-1".into()), false),
            (DefaultRoute::Blackhole("eni-s".into()), true),
            (DefaultRoute::Blackhole("i-1".into()), true),
            (DefaultRoute::Other { kind: "igw".into(), id: "i-1".into() }, false),
            (DefaultRoute::Missing, false),
        ];
        for (route, named) in cases {
            assert_eq!(nat.is_named_by(&route), named, "{route:?}");
        }
        assert!(gateway(false).is_named_by(&DefaultRoute::NatGateway("nat-1".into())));
        assert!(!gateway(false).is_named_by(&DefaultRoute::Instance("nat-1".into())));
    }

    #[test]
    fn only_regional_gateways_are_regional() {
        assert!(gateway(true).is_regional());
        assert!(!gateway(false).is_regional());
        assert!(!instance(&[]).is_regional());
    }

    #[test]
    fn table_zones_print_as_the_zone_a_dash_or_the_list() {
        assert_eq!(TableZone::Zone("us-east-1a".into()).to_string(), "us-east-1a");
        assert_eq!(TableZone::None.to_string(), "-");
        assert_eq!(
            TableZone::Several(vec!["us-east-1a".into(), "us-east-1b".into()]).to_string(),
            "us-east-1a,us-east-1b"
        );
    }
}
