//! The routes job's own domain: the set of CIDRs whose routes it manages.

use std::fmt;

use ipnet::IpNet;

use crate::aws::ec2::model::{Destination, Route, RouteOrigin};

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
    /// the managed CIDRs and made with `CreateRoute`, whatever its state.
    pub fn manages(&self, route: &Route) -> bool {
        route.origin == RouteOrigin::CreateRoute && self.contains(&route.destination)
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
    use crate::aws::ec2::model::Target;

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
