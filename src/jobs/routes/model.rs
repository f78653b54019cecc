//! The routes job's own domain: the set of CIDRs whose routes it manages.

use std::fmt;

use ipnet::IpNet;

use crate::aws::ec2::model::{Destination, Route, RouteOrigin, RouteState, Target};

/// Routes to a node (kubenet's pod routes), or blackholes (a node's route
/// whose target is gone).
fn reaches_node_or_hole(route: &Route) -> bool {
    route.state == RouteState::Blackhole
        || matches!(route.target, Target::Instance(_) | Target::NetworkInterface(_) | Target::Unknown)
}

/// The CIDRs whose routes kube-rtsync manages (`KUBE_ROUTE_CIDRS`).
///
/// A destination is managed when it is a CIDR that lies wholly inside one of
/// them: `10.1.0.0/16` manages `10.1.7.0/24` but neither `10.10.0.0/24` nor
/// `10.100.5.0/24` (containment is by address arithmetic, never by text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedCidrs(Vec<IpNet>);

impl ManagedCidrs {
    pub fn new(cidrs: Vec<IpNet>) -> Self {
        ManagedCidrs(cidrs)
    }

    pub fn cidrs(&self) -> &[IpNet] {
        &self.0
    }

    pub fn contains(&self, destination: &Destination) -> bool {
        match destination {
            Destination::Cidr(net) => self.0.iter().any(|m| m.contains(net)),
            Destination::PrefixList(_) => false,
        }
    }

    /// A route kube-rtsync may change or delete in a target table: inside
    /// the managed CIDRs, made with `CreateRoute`, and to a node (an
    /// instance or a network interface) or a blackhole.
    pub fn manages(&self, route: &Route) -> bool {
        route.origin == RouteOrigin::CreateRoute && self.contains(&route.destination) && reaches_node_or_hole(route)
    }

    /// A static route inside the managed CIDRs through anything else (an
    /// internet, transit or virtual private gateway, a peering connection,
    /// a NAT, a carrier or core-network gateway): an operator's, never
    /// copied, replaced or deleted, and reported as skipped.
    pub fn is_gateway_route(&self, route: &Route) -> bool {
        route.origin == RouteOrigin::CreateRoute && self.contains(&route.destination) && !reaches_node_or_hole(route)
    }
}

impl fmt::Display for ManagedCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Destination {
        Destination::Cidr(s.parse().unwrap())
    }

    #[test]
    fn containment_is_by_address_not_by_text() {
        let managed = ManagedCidrs::new(vec!["10.1.0.0/16".parse().unwrap()]);
        let cases = [
            ("10.1.0.0/16", true),
            ("10.1.7.0/24", true),
            ("10.1.255.255/32", true),
            ("10.10.0.0/24", false),
            ("10.100.5.0/24", false),
            ("10.0.0.0/8", false),
            ("0.0.0.0/0", false),
            ("fd00::/64", false),
        ];
        for (dest, expected) in cases {
            assert_eq!(managed.contains(&net(dest)), expected, "{dest}");
        }
        assert!(!managed.contains(&Destination::PrefixList("pl-1234".into())));
    }

    #[test]
    fn ipv6_containment() {
        let managed = ManagedCidrs::new(vec!["fd00:10:96::/48".parse().unwrap()]);
        assert!(managed.contains(&net("fd00:10:96:3::/64")));
        assert!(!managed.contains(&net("fd00:10:97::/64")));
        assert!(!managed.contains(&net("100.96.0.0/24")));
    }

    #[test]
    fn only_create_route_origin_is_managed() {
        let managed = ManagedCidrs::new(vec!["100.96.0.0/11".parse().unwrap()]);
        let mut route = Route::active("100.96.1.0/24".parse::<IpNet>().unwrap(), Target::Instance("i-1".into()));
        assert!(managed.manages(&route));
        route.origin = RouteOrigin::EnableVgwRoutePropagation;
        assert!(!managed.manages(&route));
        route.origin = RouteOrigin::CreateRouteTable;
        assert!(!managed.manages(&route));
    }
}
