//! The eip job's configuration: its own variables, on top of the shared ones.

use crate::shared::config::{ConfigError, Env, SharedConfig, excerpt};
use crate::shared::selector::TagSelector;

/// Instance tag selector of the nodes that get an address.
pub const EIP_NODE_TAGS: &str = "EIP_NODE_TAGS";
/// Tag selector of the pool's Elastic IPs.
pub const EIP_POOL_TAGS: &str = "EIP_POOL_TAGS";
/// Route 53 hosted zone for the names; unset: no DNS records.
pub const DNS_ZONE_ID: &str = "DNS_ZONE_ID";
/// The record for `a.b.c.d` is `a-b-c-d.<DNS_SUFFIX>`.
pub const DNS_SUFFIX: &str = "DNS_SUFFIX";
/// TTL of those records.
pub const DNS_TTL: &str = "DNS_TTL";
/// DynamoDB table of bindings (partition key `PublicIp`); unset: no items.
pub const BINDING_TABLE: &str = "BINDING_TABLE";

/// The eip job's own variables.
pub const VARIABLES: &[&str] = &[EIP_NODE_TAGS, EIP_POOL_TAGS, DNS_ZONE_ID, DNS_SUFFIX, DNS_TTL, BINDING_TABLE];

pub const DEFAULT_DNS_TTL: usize = 60;

const SELECTOR_FORM: &str = "comma-separated key=value pairs (a bare key matches any value), e.g. role=edge";
const ZONE_FORM: &str = "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ";
const SUFFIX_FORM: &str = "a DNS name such as nodes.example.com (required with DNS_ZONE_ID)";
const TTL_FORM: &str = "a whole number of seconds from 1 to 86400, e.g. 60";
const TABLE_FORM: &str = "a DynamoDB table name: 3 to 255 of A-Z a-z 0-9 _ - .";

/// Route 53 names for the records, when configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    pub zone_id: String,
    pub suffix: String,
    pub ttl: u64,
}

/// Validated configuration of the eip job.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub shared: SharedConfig,
    pub node_tags: TagSelector,
    pub pool_tags: TagSelector,
    pub dns: Option<DnsConfig>,
    pub table: Option<String>,
}

crate::extends_shared_config!(Config);

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let shared = SharedConfig::from_env(&env)?;
        let selector = |variable: &'static str| -> Result<TagSelector, ConfigError> {
            let value = env.require(variable, SELECTOR_FORM)?;
            TagSelector::parse(&value).map_err(|e| ConfigError::new(variable, e.to_string(), SELECTOR_FORM))
        };
        let node_tags = selector(EIP_NODE_TAGS)?;
        let pool_tags = selector(EIP_POOL_TAGS)?;
        let ttl = env.whole(DNS_TTL, DEFAULT_DNS_TTL, 1, 86_400, TTL_FORM)? as u64;
        let dns = match (env.get(DNS_ZONE_ID), env.get(DNS_SUFFIX)) {
            (None, None) => None,
            (None, Some(_)) => return Err(ConfigError::new(DNS_ZONE_ID, "is not set, but DNS_SUFFIX is", ZONE_FORM)),
            (Some(_), None) => return Err(ConfigError::new(DNS_SUFFIX, "is not set, but DNS_ZONE_ID is", SUFFIX_FORM)),
            (Some(zone), Some(suffix)) => {
                let zone_id = zone.trim_start_matches("/hostedzone/").to_owned();
                if zone_id.is_empty() || !zone_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                    return Err(ConfigError::new(
                        DNS_ZONE_ID,
                        format!("{:?} is not a hosted zone id", excerpt(&zone)),
                        ZONE_FORM,
                    ));
                }
                let suffix = suffix.trim_end_matches('.').to_ascii_lowercase();
                let label_ok = |l: &str| {
                    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                };
                if suffix.len() > 200 || !suffix.split('.').all(label_ok) {
                    return Err(ConfigError::new(
                        DNS_SUFFIX,
                        format!("{:?} is not a DNS name", excerpt(&suffix)),
                        SUFFIX_FORM,
                    ));
                }
                Some(DnsConfig { zone_id, suffix, ttl })
            }
        };
        let table = env.get(BINDING_TABLE);
        if let Some(name) = &table
            && (name.len() < 3
                || name.len() > 255
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
        {
            return Err(ConfigError::new(
                BINDING_TABLE,
                format!("{:?} is not a table name", excerpt(name)),
                TABLE_FORM,
            ));
        }
        Ok(Config { shared, node_tags, pool_tags, dns, table })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([
            ("VPC_ID".into(), "vpc-0123456789abcdef0".into()),
            (EIP_NODE_TAGS.into(), "role=edge".into()),
            (EIP_POOL_TAGS.into(), "pool=edge".into()),
        ]);
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn the_minimal_configuration_has_no_dns_and_no_table() {
        let c = config(&[]).unwrap();
        assert_eq!((c.node_tags.to_string(), c.pool_tags.to_string()), ("role=edge".into(), "pool=edge".into()));
        assert_eq!((c.dns, c.table), (None, None));
    }

    #[test]
    fn every_form_is_accepted() {
        let c = config(&[
            (DNS_ZONE_ID, "/hostedzone/Z0123456789ABC"),
            (DNS_SUFFIX, "Nodes.Example.com."),
            (DNS_TTL, "300"),
            (BINDING_TABLE, "kube-rtsync-eip"),
        ])
        .unwrap();
        assert_eq!(
            c.dns,
            Some(DnsConfig { zone_id: "Z0123456789ABC".into(), suffix: "nodes.example.com".into(), ttl: 300 })
        );
        assert_eq!(c.table.as_deref(), Some("kube-rtsync-eip"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (vec![(EIP_NODE_TAGS, "")], EIP_NODE_TAGS, "is not set"),
            (vec![(EIP_POOL_TAGS, "a=1,a=2")], EIP_POOL_TAGS, "repeats the key"),
            (vec![(EIP_NODE_TAGS, "=x")], EIP_NODE_TAGS, "empty key"),
            (vec![(DNS_ZONE_ID, "Z0123456789ABC")], DNS_SUFFIX, "is not set, but DNS_ZONE_ID is"),
            (vec![(DNS_SUFFIX, "nodes.example.com")], DNS_ZONE_ID, "is not set, but DNS_SUFFIX is"),
            (vec![(DNS_ZONE_ID, "zone-1"), (DNS_SUFFIX, "a.b")], DNS_ZONE_ID, "is not a hosted zone id"),
            (vec![(DNS_ZONE_ID, "Z1"), (DNS_SUFFIX, "a..b")], DNS_SUFFIX, "is not a DNS name"),
            (vec![(DNS_TTL, "0")], DNS_TTL, "out of range"),
            (vec![(DNS_TTL, "a minute")], DNS_TTL, "out of range"),
            (vec![(BINDING_TABLE, "no spaces allowed")], BINDING_TABLE, "is not a table name"),
        ];
        for (vars, variable, needle) in cases {
            let err = config(&vars).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}");
            assert!(err.to_string().contains(needle), "{err} should contain {needle:?}");
        }
    }
}
