//! The routes job's configuration: its own variables, on top of the shared
//! ones ([`SharedConfig`], reached through `Deref`).

use std::fmt;

use ipnet::IpNet;

use crate::aws::ec2::model::Filter;
use crate::jobs::routes::model::ManagedCidrs;
pub use crate::shared::config::{
    ConfigError, DRY_RUN, MAX_WRITES_PER_SECOND, SharedConfig, VPC_ID, WRITE_BURST, WriteRate,
};
use crate::shared::config::{Env, excerpt};
/// The cluster whose tagged route table is the source.
pub use crate::shared::tags::KUBE_CLUSTER_NAME;
/// Use this table as the source instead of the tag lookup.
pub const SOURCE_ROUTE_TABLE_ID: &str = "SOURCE_ROUTE_TABLE_ID";
/// Comma-separated CIDRs (or legacy dotted prefixes) whose routes are managed.
pub const KUBE_ROUTE_CIDRS: &str = "KUBE_ROUTE_CIDRS";
/// JSON array of `DescribeRouteTables` filters selecting the target tables.
pub const PRIVATE_RT_FILTERS: &str = "PRIVATE_RT_FILTERS";
/// Allow deletes when the source has no managed route at all.
pub const ALLOW_EMPTY_SOURCE: &str = "ALLOW_EMPTY_SOURCE";
/// Routes a table may hold before a plan is refused for it.
pub const ROUTE_TABLE_LIMIT: &str = "ROUTE_TABLE_LIMIT";
/// How many route writes may be in flight at the same time.
pub const APPLY_CONCURRENCY: &str = "APPLY_CONCURRENCY";
/// After a launch (or `running`) event, how long to wait for the new node's
/// pod route to appear in the source; `0` disables the wait.
pub const ROUTE_WAIT_SECONDS: &str = "ROUTE_WAIT_SECONDS";

/// The routes job's own variables (the shared ones are in
/// [`crate::shared::config::SHARED_VARIABLES`]).
pub const VARIABLES: &[&str] = &[
    KUBE_CLUSTER_NAME,
    SOURCE_ROUTE_TABLE_ID,
    KUBE_ROUTE_CIDRS,
    PRIVATE_RT_FILTERS,
    ALLOW_EMPTY_SOURCE,
    ROUTE_TABLE_LIMIT,
    APPLY_CONCURRENCY,
    ROUTE_WAIT_SECONDS,
];

pub const DEFAULT_ROUTE_CIDRS: &str = "100.96.0.0/11";
pub const DEFAULT_PRIVATE_RT_FILTERS: &str = r#"[{"Name":"tag:Name","Values":["private_*"]}]"#;
/// EC2's default quota of routes per route table (Service Quotas: Amazon
/// VPC, "Routes per route table", L-93826ACB): 500 since June 2025, when it
/// was raised from 50; adjustable up to 1,000.
pub const DEFAULT_ROUTE_TABLE_LIMIT: usize = 500;
pub const DEFAULT_APPLY_CONCURRENCY: usize = 16;
pub const DEFAULT_ROUTE_WAIT_SECONDS: usize = 60;

/// How the source (the cluster's) route table is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSelector {
    /// The one table tagged `KubernetesCluster=<name>` or carrying the tag
    /// key `kubernetes.io/cluster/<name>`.
    ClusterTag(String),
    /// An explicit table id (`SOURCE_ROUTE_TABLE_ID`).
    RouteTableId(String),
}

impl fmt::Display for SourceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSelector::ClusterTag(name) => {
                write!(f, "the table tagged KubernetesCluster={name} or kubernetes.io/cluster/{name}")
            }
            SourceSelector::RouteTableId(id) => write!(f, "route table {id}"),
        }
    }
}

/// Validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub shared: SharedConfig,
    pub cluster_name: Option<String>,
    pub source: SourceSelector,
    pub managed: ManagedCidrs,
    pub target_filters: Vec<Filter>,
    pub allow_empty_source: bool,
    pub route_table_limit: usize,
    pub apply_concurrency: usize,
    pub route_wait: std::time::Duration,
}

const RTB_ID_FORM: &str = "a route table id such as rtb-0a1b2c3d4e5f67890";
const CLUSTER_FORM: &str = "the cluster name, e.g. k8s.example.com (required unless SOURCE_ROUTE_TABLE_ID is set)";
const CIDRS_FORM: &str =
    "comma-separated CIDRs such as 100.96.0.0/11,fd00:100:96::/48, or a dotted prefix such as 100.96";
const FILTERS_FORM: &str =
    r#"a non-empty JSON array of EC2 filters such as [{"Name":"tag:Name","Values":["private_*"]}]"#;
const LIMIT_FORM: &str = "a whole number of routes >= 1, e.g. 500";
const CONCURRENCY_FORM: &str = "a whole number of writes in flight from 1 to 64, e.g. 16";
const WAIT_FORM: &str = "a whole number of seconds from 0 to 600 (0 disables the wait), e.g. 60";

impl Config {
    /// Reads the configuration through `lookup` (a name to its value, if set).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let shared = SharedConfig::from_env(&env)?;

        let cluster_name = crate::shared::tags::cluster_name(&env, CLUSTER_FORM)?;
        let source = match (env.aws_id(SOURCE_ROUTE_TABLE_ID, "rtb-", "a route table id", RTB_ID_FORM)?, &cluster_name)
        {
            (Some(id), _) => SourceSelector::RouteTableId(id),
            (None, Some(name)) => SourceSelector::ClusterTag(name.clone()),
            (None, None) => {
                return Err(ConfigError::new(KUBE_CLUSTER_NAME, "is not set", CLUSTER_FORM));
            }
        };

        let managed = parse_route_cidrs(&env.get(KUBE_ROUTE_CIDRS).unwrap_or_else(|| DEFAULT_ROUTE_CIDRS.into()))?;
        let target_filters =
            parse_filters(&env.get(PRIVATE_RT_FILTERS).unwrap_or_else(|| DEFAULT_PRIVATE_RT_FILTERS.into()))?;
        let allow_empty_source = env.bool(ALLOW_EMPTY_SOURCE)?;
        let route_table_limit = env.whole(ROUTE_TABLE_LIMIT, DEFAULT_ROUTE_TABLE_LIMIT, 1, 100_000, LIMIT_FORM)?;
        let apply_concurrency = env.whole(APPLY_CONCURRENCY, DEFAULT_APPLY_CONCURRENCY, 1, 64, CONCURRENCY_FORM)?;
        let route_wait = env.whole(ROUTE_WAIT_SECONDS, DEFAULT_ROUTE_WAIT_SECONDS, 0, 600, WAIT_FORM)?;

        Ok(Config {
            shared,
            cluster_name,
            source,
            managed,
            target_filters,
            allow_empty_source,
            route_table_limit,
            apply_concurrency,
            route_wait: std::time::Duration::from_secs(route_wait as u64),
        })
    }
}

crate::extends_shared_config!(Config);

/// Parses `KUBE_ROUTE_CIDRS`.
pub fn parse_route_cidrs(value: &str) -> Result<ManagedCidrs, ConfigError> {
    let mut cidrs = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(ConfigError::new(
                KUBE_ROUTE_CIDRS,
                format!("{:?} has an empty entry", excerpt(value)),
                CIDRS_FORM,
            ));
        }
        let net = match item.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => legacy_prefix(item).ok_or_else(|| {
                ConfigError::new(
                    KUBE_ROUTE_CIDRS,
                    format!("{:?} is neither a CIDR nor a dotted prefix", excerpt(item)),
                    CIDRS_FORM,
                )
            })?,
        };
        if net.trunc() != net {
            return Err(ConfigError::new(
                KUBE_ROUTE_CIDRS,
                format!("{item:?} has host bits set (did you mean {}?)", net.trunc()),
                CIDRS_FORM,
            ));
        }
        if net.prefix_len() == 0 {
            return Err(ConfigError::new(
                KUBE_ROUTE_CIDRS,
                format!("{item:?} would manage the default route (and the NAT gateway route with it)"),
                CIDRS_FORM,
            ));
        }
        if !cidrs.contains(&net) {
            cidrs.push(net);
        }
    }
    Ok(ManagedCidrs::new(cidrs))
}

/// The original Python tool matched routes by a dotted text prefix such as
/// `100.96`. Read it as the CIDR it denotes: one to three whole octets.
fn legacy_prefix(item: &str) -> Option<IpNet> {
    let octets: Vec<&str> = item.trim_end_matches('.').split('.').collect();
    if octets.is_empty() || octets.len() > 3 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (i, octet) in octets.iter().enumerate() {
        if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        bytes[i] = octet.parse().ok()?;
    }
    let prefix_len = 8 * octets.len() as u8;
    IpNet::new(std::net::Ipv4Addr::from(bytes).into(), prefix_len).ok()
}

/// Parses `PRIVATE_RT_FILTERS`.
pub fn parse_filters(value: &str) -> Result<Vec<Filter>, ConfigError> {
    let filters: Vec<Filter> = serde_json::from_str(value).map_err(|e| {
        ConfigError::new(PRIVATE_RT_FILTERS, format!("is not a JSON array of filters ({e})"), FILTERS_FORM)
    })?;
    if filters.is_empty() {
        return Err(ConfigError::new(PRIVATE_RT_FILTERS, "selects no filter at all", FILTERS_FORM));
    }
    for filter in &filters {
        if filter.name.trim().is_empty() {
            return Err(ConfigError::new(PRIVATE_RT_FILTERS, "has a filter with an empty Name", FILTERS_FORM));
        }
        if filter.values.is_empty() {
            return Err(ConfigError::new(
                PRIVATE_RT_FILTERS,
                format!("filter {:?} has no Values", filter.name),
                FILTERS_FORM,
            ));
        }
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const VPC: &str = "vpc-0123456789abcdef0";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![(VPC_ID, VPC), (KUBE_CLUSTER_NAME, "k8s.example.com")]
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&minimal()).unwrap();
        assert_eq!(c.vpc_id, VPC);
        assert_eq!(c.source, SourceSelector::ClusterTag("k8s.example.com".into()));
        assert_eq!(c.managed.cidrs(), &["100.96.0.0/11".parse::<IpNet>().unwrap()]);
        assert_eq!(c.target_filters, vec![Filter::new("tag:Name", ["private_*"])]);
        assert!(!c.dry_run);
        assert!(!c.allow_empty_source);
        assert_eq!(c.write_rate, WriteRate { per_second: 4.0, burst: 20 });
        assert_eq!(c.route_table_limit, 500);
        assert_eq!(c.apply_concurrency, 16);
        assert_eq!(c.route_wait.as_secs(), 60);
    }

    #[test]
    fn source_table_id_replaces_the_cluster_name() {
        let c = config(&[(VPC_ID, VPC), (SOURCE_ROUTE_TABLE_ID, "rtb-0123456789abcdef0")]).unwrap();
        assert_eq!(c.source, SourceSelector::RouteTableId("rtb-0123456789abcdef0".into()));
        assert_eq!(c.cluster_name, None);
    }

    #[test]
    fn every_listed_form_is_accepted() {
        let mut vars = minimal();
        vars.extend([
            (KUBE_ROUTE_CIDRS, " 100.96.0.0/11 , fd00:100:96::/48,10.1.0.0/16 "),
            (PRIVATE_RT_FILTERS, r#"[{"Name":"tag:kubernetes.io/role","Values":["private"]},{"Name":"route-table-id","Values":["rtb-1","rtb-2"]}]"#),
            (DRY_RUN, "TRUE"),
            (ALLOW_EMPTY_SOURCE, "1"),
            (MAX_WRITES_PER_SECOND, "0"),
            (WRITE_BURST, "50"),
            (ROUTE_TABLE_LIMIT, "1000"),
            (APPLY_CONCURRENCY, "4"),
            (ROUTE_WAIT_SECONDS, "0"),
        ]);
        let c = config(&vars).unwrap();
        assert_eq!(c.managed.to_string(), "100.96.0.0/11,fd00:100:96::/48,10.1.0.0/16");
        assert_eq!(c.target_filters.len(), 2);
        assert_eq!(c.target_filters[1].values, vec!["rtb-1", "rtb-2"]);
        assert!(c.dry_run && c.allow_empty_source);
        assert_eq!(c.write_rate, WriteRate { per_second: 0.0, burst: 50 });
        assert_eq!(c.route_table_limit, 1000);
        assert_eq!(c.apply_concurrency, 4);
        assert!(c.route_wait.is_zero());
    }

    #[test]
    fn legacy_dotted_prefixes_denote_whole_octets() {
        let cases = [
            ("100.96", "100.96.0.0/16"),
            ("100.96.", "100.96.0.0/16"),
            ("10", "10.0.0.0/8"),
            ("100.96.3", "100.96.3.0/24"),
            ("100.96,100.97", "100.96.0.0/16,100.97.0.0/16"),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_route_cidrs(input).unwrap().to_string(), expected, "{input}");
        }
    }

    #[test]
    fn every_bad_form_names_its_variable() {
        type Case = (Vec<(&'static str, &'static str)>, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (vec![], VPC_ID, "is not set"),
            (vec![(VPC_ID, "  ")], VPC_ID, "is not set"),
            (vec![(VPC_ID, "vpc-xyz")], VPC_ID, "not a VPC id"),
            (vec![(VPC_ID, "rtb-0123456789abcdef0")], VPC_ID, "not a VPC id"),
            (vec![(VPC_ID, VPC)], KUBE_CLUSTER_NAME, "is not set"),
            (vec![(VPC_ID, VPC), (KUBE_CLUSTER_NAME, "a b")], KUBE_CLUSTER_NAME, "white space"),
            (vec![(VPC_ID, VPC), (SOURCE_ROUTE_TABLE_ID, "rt-1234")], SOURCE_ROUTE_TABLE_ID, "not a route table id"),
            (vec![(KUBE_ROUTE_CIDRS, "100.96.0.0/33")], KUBE_ROUTE_CIDRS, "neither a CIDR"),
            (vec![(KUBE_ROUTE_CIDRS, "100.96.0.1/11")], KUBE_ROUTE_CIDRS, "did you mean 100.96.0.0/11"),
            (vec![(KUBE_ROUTE_CIDRS, "0.0.0.0/0")], KUBE_ROUTE_CIDRS, "default route"),
            (vec![(KUBE_ROUTE_CIDRS, "::/0")], KUBE_ROUTE_CIDRS, "default route"),
            (vec![(KUBE_ROUTE_CIDRS, "100.96.0.0/11,,10.0.0.0/8")], KUBE_ROUTE_CIDRS, "empty entry"),
            (vec![(KUBE_ROUTE_CIDRS, "100.256")], KUBE_ROUTE_CIDRS, "neither a CIDR"),
            (vec![(KUBE_ROUTE_CIDRS, "1.2.3.4.5")], KUBE_ROUTE_CIDRS, "neither a CIDR"),
            (vec![(KUBE_ROUTE_CIDRS, "pods")], KUBE_ROUTE_CIDRS, "neither a CIDR"),
            (vec![(PRIVATE_RT_FILTERS, "private_*")], PRIVATE_RT_FILTERS, "not a JSON array"),
            (
                vec![(PRIVATE_RT_FILTERS, r#"{"Name":"tag:Name","Values":["x"]}"#)],
                PRIVATE_RT_FILTERS,
                "not a JSON array",
            ),
            (
                vec![(PRIVATE_RT_FILTERS, r#"[{"name":"tag:Name","values":["x"]}]"#)],
                PRIVATE_RT_FILTERS,
                "not a JSON array",
            ),
            (vec![(PRIVATE_RT_FILTERS, "[]")], PRIVATE_RT_FILTERS, "no filter"),
            (vec![(PRIVATE_RT_FILTERS, r#"[{"Name":"","Values":["x"]}]"#)], PRIVATE_RT_FILTERS, "empty Name"),
            (vec![(PRIVATE_RT_FILTERS, r#"[{"Name":"tag:Name","Values":[]}]"#)], PRIVATE_RT_FILTERS, "no Values"),
            (vec![(DRY_RUN, "maybe")], DRY_RUN, "not a boolean"),
            (vec![(ALLOW_EMPTY_SOURCE, "2")], ALLOW_EMPTY_SOURCE, "not a boolean"),
            (vec![(MAX_WRITES_PER_SECOND, "-1")], MAX_WRITES_PER_SECOND, "not a rate"),
            (vec![(MAX_WRITES_PER_SECOND, "NaN")], MAX_WRITES_PER_SECOND, "not a rate"),
            (vec![(WRITE_BURST, "0")], WRITE_BURST, "out of range"),
            (vec![(WRITE_BURST, "1.5")], WRITE_BURST, "not a whole number"),
            (vec![(ROUTE_TABLE_LIMIT, "0")], ROUTE_TABLE_LIMIT, "out of range"),
            (vec![(APPLY_CONCURRENCY, "65")], APPLY_CONCURRENCY, "out of range"),
        ];
        for (vars, variable, needle) in cases {
            let mut all = if vars.iter().any(|(k, _)| *k == VPC_ID) || vars.is_empty() { vec![] } else { minimal() };
            all.extend(vars.iter().copied());
            let err = config(&all).expect_err(&format!("{all:?} should be rejected"));
            assert_eq!(err.variable, variable, "{all:?}: {err}");
            let text = err.to_string();
            assert!(text.contains(needle), "{all:?}: {text:?} should contain {needle:?}");
            assert!(text.starts_with(variable) && text.contains("expected"), "{text}");
        }
    }
}
