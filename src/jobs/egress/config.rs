//! The egress job's configuration: its own variables, on top of the shared
//! ones ([`SharedConfig`], reached through `Deref`).

use ipnet::IpNet;

use crate::shared::config::{ConfigError, Env, SharedConfig, excerpt};

/// The tag that enrols route tables, NAT instances and NAT gateways.
pub const EGRESS_TAG_KEY: &str = "EGRESS_TAG_KEY";
/// Its value: only resources tagged `<EGRESS_TAG_KEY>=<EGRESS_ROUTER_ID>` take
/// part.
pub const EGRESS_ROUTER_ID: &str = "EGRESS_ROUTER_ID";
/// The tag giving a resource's zone.
pub const EGRESS_ZONE_TAG_KEY: &str = "EGRESS_ZONE_TAG_KEY";
/// The route this job owns in each enrolled table.
pub const EGRESS_DESTINATION: &str = "EGRESS_DESTINATION";
/// How long a zone's NAT must be healthy before its tables move back.
pub const EGRESS_FAILBACK_SECONDS: &str = "EGRESS_FAILBACK_SECONDS";
/// A TCP port to probe on each NAT instance's private address.
pub const EGRESS_PROBE_PORT: &str = "EGRESS_PROBE_PORT";
/// Turn the source/destination check off on enrolled NAT instances.
pub const EGRESS_FIX_SOURCE_DEST_CHECK: &str = "EGRESS_FIX_SOURCE_DEST_CHECK";
/// An enrolled regional NAT gateway is the fallback of a zone without a healthy
/// NAT.
pub const EGRESS_REGIONAL_FALLBACK: &str = "EGRESS_REGIONAL_FALLBACK";

/// The egress job's own variables.
pub const VARIABLES: &[&str] = &[
    EGRESS_TAG_KEY,
    EGRESS_ROUTER_ID,
    EGRESS_ZONE_TAG_KEY,
    EGRESS_DESTINATION,
    EGRESS_FAILBACK_SECONDS,
    EGRESS_PROBE_PORT,
    EGRESS_FIX_SOURCE_DEST_CHECK,
    EGRESS_REGIONAL_FALLBACK,
];

pub const DEFAULT_TAG_KEY: &str = "aws-nat-router/id";
pub const DEFAULT_ROUTER_ID: &str = "squid";
pub const DEFAULT_ZONE_TAG_KEY: &str = "aws-nat-router/zone";
pub const DEFAULT_DESTINATION: &str = "0.0.0.0/0";
pub const DEFAULT_FAILBACK_SECONDS: usize = 300;

/// The route-table tag holding the failback clock: epoch seconds since
/// which the table's own zone has had a healthy NAT while the table is on
/// another zone's. NATs are never changed, and the next invocation must
/// find the clock, so it lives on the table the job already writes.
pub const FAILBACK_CLOCK_TAG: &str = "kube-rtsync/egress-healthy-since";

const TAG_FORM: &str = "a tag key of 1 to 128 characters, not starting with aws: (e.g. aws-nat-router/id)";
const ROUTER_FORM: &str = "a tag value of at most 256 characters (e.g. squid)";
const DESTINATION_FORM: &str = "an IPv4 or IPv6 CIDR such as 0.0.0.0/0 or ::/0";
const FAILBACK_FORM: &str =
    "a whole number of seconds from 0 to 86400 (0 moves back at the first healthy sight), e.g. 300";
const PORT_FORM: &str = "a TCP port from 1 to 65535, e.g. 22 (unset: no probe)";

/// Validated configuration of the egress job.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub shared: SharedConfig,
    pub tag_key: String,
    pub router_id: String,
    pub zone_tag_key: String,
    pub destination: IpNet,
    pub failback_seconds: u64,
    pub probe_port: Option<u16>,
    pub fix_source_dest_check: bool,
    pub regional_fallback: bool,
}

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let shared = SharedConfig::from_env(&env)?;
        let tag_key = parse_tag_key(&env, EGRESS_TAG_KEY, DEFAULT_TAG_KEY)?;
        let router_id = env.get(EGRESS_ROUTER_ID).unwrap_or_else(|| DEFAULT_ROUTER_ID.into());
        if router_id.chars().count() > 256 {
            return Err(ConfigError::new(EGRESS_ROUTER_ID, "is longer than 256 characters", ROUTER_FORM));
        }
        let zone_tag_key = parse_tag_key(&env, EGRESS_ZONE_TAG_KEY, DEFAULT_ZONE_TAG_KEY)?;
        let destination = env.get(EGRESS_DESTINATION).unwrap_or_else(|| DEFAULT_DESTINATION.into());
        let destination = match destination.parse::<IpNet>() {
            Ok(net) if net.trunc() == net => net,
            _ => {
                return Err(ConfigError::new(
                    EGRESS_DESTINATION,
                    format!("{:?} is not a CIDR", excerpt(&destination)),
                    DESTINATION_FORM,
                ));
            }
        };
        let failback_seconds =
            env.whole(EGRESS_FAILBACK_SECONDS, DEFAULT_FAILBACK_SECONDS, 0, 86_400, FAILBACK_FORM)?;
        let probe_port = match env.get(EGRESS_PROBE_PORT) {
            None => None,
            Some(port) => Some(port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                ConfigError::new(EGRESS_PROBE_PORT, format!("{:?} is not a port", excerpt(&port)), PORT_FORM)
            })?),
        };
        let fix_source_dest_check = match env.get(EGRESS_FIX_SOURCE_DEST_CHECK) {
            None => true,
            Some(v) => crate::shared::config::parse_bool(EGRESS_FIX_SOURCE_DEST_CHECK, Some(v))?,
        };
        let regional_fallback = env.bool(EGRESS_REGIONAL_FALLBACK)?;
        Ok(Config {
            shared,
            tag_key,
            router_id,
            zone_tag_key,
            destination,
            failback_seconds: failback_seconds as u64,
            probe_port,
            fix_source_dest_check,
            regional_fallback,
        })
    }
}

fn parse_tag_key(env: &Env<'_>, variable: &'static str, default: &str) -> Result<String, ConfigError> {
    let key = env.get(variable).unwrap_or_else(|| default.into());
    if key.chars().count() > 128 || key.starts_with("aws:") {
        return Err(ConfigError::new(variable, format!("{:?} cannot be a tag key", excerpt(&key)), TAG_FORM));
    }
    Ok(key)
}

crate::extends_shared_config!(Config);

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([("VPC_ID".into(), "vpc-0123456789abcdef0".into())]);
        map.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!((c.tag_key.as_str(), c.router_id.as_str()), ("aws-nat-router/id", "squid"));
        assert_eq!(c.zone_tag_key, "aws-nat-router/zone");
        assert_eq!(c.destination.to_string(), "0.0.0.0/0");
        assert_eq!(c.failback_seconds, 300);
        assert_eq!(c.probe_port, None);
        assert!(c.fix_source_dest_check);
        assert!(!c.regional_fallback);
        assert!(!c.dry_run);
    }

    #[test]
    fn every_form_is_accepted() {
        let c = config(&[
            (EGRESS_TAG_KEY, "team/nat"),
            (EGRESS_ROUTER_ID, "blue"),
            (EGRESS_ZONE_TAG_KEY, "team/zone"),
            (EGRESS_DESTINATION, "::/0"),
            (EGRESS_FAILBACK_SECONDS, "0"),
            (EGRESS_PROBE_PORT, "22"),
            (EGRESS_FIX_SOURCE_DEST_CHECK, "false"),
            (EGRESS_REGIONAL_FALLBACK, "true"),
        ])
        .unwrap();
        assert_eq!(
            (c.tag_key.as_str(), c.router_id.as_str(), c.zone_tag_key.as_str()),
            ("team/nat", "blue", "team/zone")
        );
        assert_eq!((c.destination.to_string(), c.failback_seconds, c.probe_port), ("::/0".into(), 0, Some(22)));
        assert!(!c.fix_source_dest_check);
        assert!(c.regional_fallback);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (EGRESS_TAG_KEY, "aws:reserved", "cannot be a tag key"),
            (EGRESS_DESTINATION, "0.0.0.0/33", "is not a CIDR"),
            (EGRESS_DESTINATION, "10.0.0.1/8", "is not a CIDR"),
            (EGRESS_FAILBACK_SECONDS, "-1", "out of range"),
            (EGRESS_FAILBACK_SECONDS, "86401", "out of range"),
            (EGRESS_PROBE_PORT, "0", "is not a port"),
            (EGRESS_PROBE_PORT, "http", "is not a port"),
            (EGRESS_FIX_SOURCE_DEST_CHECK, "sometimes", "not a boolean"),
            (EGRESS_REGIONAL_FALLBACK, "regional", "not a boolean"),
        ];
        for (variable, value, needle) in cases {
            let err = config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
