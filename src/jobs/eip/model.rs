//! What the `eip` job observes: instances, the address pool, binding items, A
//! records and its settings.

use std::cmp::Ordering;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::shared::nodes::NodeRule;

/// EC2 state names the planner reasons about.
pub const RUNNING: &str = "running";
pub const PENDING: &str = "pending";

pub use crate::aws::ec2::model::Instance;

pub use crate::aws::ec2::model::Address as PoolAddress;

pub use crate::aws::dynamodb::Binding;

impl Binding {
    /// The item a release leaves behind: the address stays in the pool,
    /// claimable again.
    pub fn released(address: &PoolAddress, now: u64) -> Self {
        Binding {
            public_ip: address.public_ip.clone(),
            allocation_id: address.allocation_id.clone(),
            instance_id: None,
            association_id: None,
            dns_name: None,
            allocated: false,
            updated_at: now,
        }
    }
}

pub use crate::aws::route53::ARecord;

impl ARecord {
    /// The record an address should have.
    pub fn for_address(public_ip: &str, dns: &Dns) -> Self {
        ARecord { name: dns_name(public_ip, &dns.suffix), ttl: dns.ttl, values: vec![public_ip.to_string()] }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub suffix: String,
    pub ttl: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub vpc_id: String,
    /// `EIP_NODE_TAGS`, a selector alone.
    pub nodes: NodeRule,
    /// `None`: no DNS records at all.
    pub dns: Option<Dns>,
    /// `false`: no binding table, so no items are read or written.
    pub table: bool,
}

impl Settings {
    /// Rule 1: a running instance of the VPC that matches the node tags.
    pub fn is_node(&self, instance: &Instance) -> bool {
        instance.state == RUNNING && self.nodes.selects(instance, &self.vpc_id)
    }
}

/// `a.b.c.d` -> `a-b-c-d.<suffix>`; a trailing dot on the suffix is dropped, as
/// record names carry none here.
pub fn dns_name(ip: &str, suffix: &str) -> String {
    format!("{}.{}", ip.replace('.', "-"), suffix.trim_end_matches('.'))
}

/// Numeric order of IPv4 addresses, so that `3.0.0.9` comes before `3.0.0.10`;
/// anything unparsable sorts last.
pub fn ip_cmp(a: &str, b: &str) -> Ordering {
    match (a.parse::<Ipv4Addr>(), b.parse::<Ipv4Addr>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_name_replaces_dots_and_drops_a_trailing_dot_of_the_suffix() {
        assert_eq!(dns_name("3.4.5.6", "nodes.example.com"), "3-4-5-6.nodes.example.com");
        assert_eq!(dns_name("3.4.5.6", "nodes.example.com."), "3-4-5-6.nodes.example.com");
    }

    #[test]
    fn addresses_compare_as_numbers_not_as_text() {
        assert_eq!(ip_cmp("3.0.0.9", "3.0.0.10"), Ordering::Less);
        assert_eq!(ip_cmp("10.0.0.1", "9.0.0.1"), Ordering::Greater);
        assert_eq!(ip_cmp("not-an-ip", "9.0.0.1"), Ordering::Greater);
    }

    #[test]
    fn a_selector_pair_without_value_matches_any_value_and_all_pairs_must_match() {
        let settings = Settings {
            nodes: NodeRule::selector_only("role=edge,karpenter.sh/nodepool".parse().unwrap()),
            vpc_id: "vpc-1".into(),
            dns: None,
            table: false,
        };
        let node = |pairs: &[(&str, &str)]| Instance {
            vpc_id: "vpc-1".into(),
            state: RUNNING.into(),
            tags: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Instance::default()
        };
        assert!(settings.is_node(&node(&[("role", "edge"), ("karpenter.sh/nodepool", "any")])));
        assert!(!settings.is_node(&node(&[("role", "web"), ("karpenter.sh/nodepool", "any")])));
        assert!(!settings.is_node(&node(&[("role", "edge")])));
    }

    #[test]
    fn a_binding_item_serializes_with_the_table_attribute_names() {
        let item = Binding { public_ip: "3.4.5.6".into(), allocated: true, ..Binding::default() };
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["PublicIp"], "3.4.5.6");
        assert_eq!(json["Allocated"], true);
        assert!(json.get("UpdatedAt").is_some());
    }
}
