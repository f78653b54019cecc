//! The targets job's configuration: its own variables (and the names
//! `node-nlb-sync` used for them), on top of the shared ones.

use crate::shared::config::{ConfigError, Env, SharedConfig, excerpt, parse_list};
use crate::shared::selector::TagSelector;
use crate::shared::tags::KUBE_CLUSTER_NAME;

use crate::shared::nodes::NodeRule;

/// Comma-separated target group ARNs.
pub const TARGET_GROUP_ARNS: &str = "TARGET_GROUP_ARNS";
/// Instance tag selector of the nodes.
pub const TARGET_NODE_TAGS: &str = "TARGET_NODE_TAGS";
/// `node-nlb-sync`'s name for [`TARGET_GROUP_ARNS`].
pub const NLB_SYNC_TARGETGROUPARNS: &str = "NLB_SYNC_TARGETGROUPARNS";
/// `node-nlb-sync`'s one-pair selector: the key...
pub const NLB_SYNC_LABELFILTERKEY: &str = "NLB_SYNC_LABELFILTERKEY";
/// ...and its value (unset: any value).
pub const NLB_SYNC_LABELFILTERVALUE: &str = "NLB_SYNC_LABELFILTERVALUE";

/// The targets job's own variables (`node-nlb-sync`'s names aside).
pub const VARIABLES: &[&str] = &[TARGET_GROUP_ARNS, TARGET_NODE_TAGS, KUBE_CLUSTER_NAME];

const ARNS_FORM: &str = "comma-separated target group ARNs such as arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nodes-443/0123456789abcdef";
const SELECTOR_FORM: &str =
    "comma-separated key=value pairs (a bare key matches any value), e.g. kops.k8s.io/instancegroup=nodes";
const CLUSTER_FORM: &str = "the cluster name, e.g. k8s.example.com";
const RULE_FORM: &str = "TARGET_NODE_TAGS (or NLB_SYNC_LABELFILTERKEY), KUBE_CLUSTER_NAME, or both";

/// Validated configuration of the targets job.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub shared: SharedConfig,
    pub target_group_arns: Vec<String>,
    pub nodes: NodeRule,
}

crate::extends_shared_config!(Config);

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let shared = SharedConfig::from_env(&env)?;

        let (arns_variable, arns) = match (env.get(TARGET_GROUP_ARNS), env.get(NLB_SYNC_TARGETGROUPARNS)) {
            (Some(_), Some(_)) => return Err(both(TARGET_GROUP_ARNS, NLB_SYNC_TARGETGROUPARNS, ARNS_FORM)),
            (Some(v), None) => (TARGET_GROUP_ARNS, v),
            (None, Some(v)) => (NLB_SYNC_TARGETGROUPARNS, v),
            (None, None) => return Err(ConfigError::new(TARGET_GROUP_ARNS, "is not set", ARNS_FORM)),
        };
        let mut target_group_arns = Vec::new();
        for arn in parse_list(arns_variable, &arns, ARNS_FORM)? {
            if !is_target_group_arn(&arn) {
                return Err(ConfigError::new(
                    arns_variable,
                    format!("{:?} is not a target group ARN", excerpt(&arn)),
                    ARNS_FORM,
                ));
            }
            if !target_group_arns.contains(&arn) {
                target_group_arns.push(arn);
            }
        }

        let selector = match (env.get(TARGET_NODE_TAGS), env.get(NLB_SYNC_LABELFILTERKEY)) {
            (Some(_), Some(_)) => return Err(both(TARGET_NODE_TAGS, NLB_SYNC_LABELFILTERKEY, SELECTOR_FORM)),
            (Some(tags), None) => Some(selector(TARGET_NODE_TAGS, &tags)?),
            (None, Some(key)) => {
                let pair = match env.get(NLB_SYNC_LABELFILTERVALUE) {
                    Some(value) => format!("{key}={value}"),
                    None => key,
                };
                Some(selector(NLB_SYNC_LABELFILTERKEY, &pair)?)
            }
            (None, None) if env.get(NLB_SYNC_LABELFILTERVALUE).is_some() => {
                return Err(ConfigError::new(
                    NLB_SYNC_LABELFILTERVALUE,
                    "is set without NLB_SYNC_LABELFILTERKEY",
                    SELECTOR_FORM,
                ));
            }
            (None, None) => None,
        };
        let cluster = crate::shared::tags::cluster_name(&env, CLUSTER_FORM)?;
        let nodes = NodeRule::new(selector, cluster).map_err(|_| {
            ConfigError::new(
                TARGET_NODE_TAGS,
                format!("and {KUBE_CLUSTER_NAME} are both unset, so every instance of the VPC would be a node"),
                RULE_FORM,
            )
        })?;
        Ok(Config { shared, target_group_arns, nodes })
    }
}

fn both(new: &'static str, seed: &'static str, expected: &'static str) -> ConfigError {
    ConfigError::new(new, format!("and {seed} are both set; keep one (they name the same setting)"), expected)
}

fn selector(variable: &'static str, value: &str) -> Result<TagSelector, ConfigError> {
    TagSelector::parse(value).map_err(|e| ConfigError::new(variable, e.to_string(), SELECTOR_FORM))
}

/// `arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>`.
pub fn is_target_group_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_, partition, service, region, account, resource] = parts[..] else { return false };
    let resource: Vec<&str> = resource.split('/').collect();
    arn_ == "arn"
        && partition.starts_with("aws")
        && service == "elasticloadbalancing"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && matches!(resource[..], ["targetgroup", name, id] if !name.is_empty() && !id.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nodes-443/0123456789abcdef";
    const ARN2: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nodes-80/fedcba9876543210";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([("VPC_ID".into(), "vpc-0123456789abcdef0".into())]);
        map.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn the_contract_names_and_the_seed_names_both_work() {
        let c = config(&[(TARGET_GROUP_ARNS, &format!(" {ARN} , {ARN2} ")), (TARGET_NODE_TAGS, "role=node")]).unwrap();
        assert_eq!(c.target_group_arns, vec![ARN, ARN2]);
        assert_eq!(c.nodes.selector().unwrap().to_string(), "role=node");
        assert_eq!(c.nodes.cluster(), None);

        let seed = config(&[
            (NLB_SYNC_TARGETGROUPARNS, ARN),
            (NLB_SYNC_LABELFILTERKEY, "role"),
            (NLB_SYNC_LABELFILTERVALUE, "node"),
        ]);
        assert_eq!(seed.unwrap().nodes.selector().unwrap().to_string(), "role=node");
        let any_value = config(&[(NLB_SYNC_TARGETGROUPARNS, ARN), (NLB_SYNC_LABELFILTERKEY, "karpenter.sh/nodepool")]);
        assert_eq!(any_value.unwrap().nodes.selector().unwrap().to_string(), "karpenter.sh/nodepool");
        let cluster_only = config(&[(TARGET_GROUP_ARNS, ARN), (KUBE_CLUSTER_NAME, "k8s.example.com")]).unwrap();
        assert_eq!(cluster_only.nodes.cluster(), Some("k8s.example.com"));
    }

    #[test]
    fn bad_configurations_name_their_variables() {
        let empty_entry = format!("{ARN},,{ARN2}");
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (vec![(TARGET_NODE_TAGS, "a=b")], TARGET_GROUP_ARNS, "is not set"),
            (
                vec![(TARGET_GROUP_ARNS, ARN), (NLB_SYNC_TARGETGROUPARNS, ARN), (TARGET_NODE_TAGS, "a")],
                TARGET_GROUP_ARNS,
                "NLB_SYNC_TARGETGROUPARNS are both set",
            ),
            (
                vec![(TARGET_GROUP_ARNS, ARN), (TARGET_NODE_TAGS, "a"), (NLB_SYNC_LABELFILTERKEY, "a")],
                TARGET_NODE_TAGS,
                "NLB_SYNC_LABELFILTERKEY are both set",
            ),
            (
                vec![
                    (TARGET_GROUP_ARNS, "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/x/1"),
                    (TARGET_NODE_TAGS, "a"),
                ],
                TARGET_GROUP_ARNS,
                "is not a target group ARN",
            ),
            (
                vec![(NLB_SYNC_TARGETGROUPARNS, "nodes-443"), (TARGET_NODE_TAGS, "a")],
                NLB_SYNC_TARGETGROUPARNS,
                "is not a target group ARN",
            ),
            (vec![(TARGET_GROUP_ARNS, &empty_entry), (TARGET_NODE_TAGS, "a")], TARGET_GROUP_ARNS, "empty entry"),
            (vec![(TARGET_GROUP_ARNS, ARN), (TARGET_NODE_TAGS, "a=1,a=2")], TARGET_NODE_TAGS, "repeats the key"),
            (vec![(TARGET_GROUP_ARNS, ARN), (TARGET_NODE_TAGS, "=x")], TARGET_NODE_TAGS, "empty key"),
            (vec![(TARGET_GROUP_ARNS, ARN)], TARGET_NODE_TAGS, "KUBE_CLUSTER_NAME are both unset"),
            (
                vec![(TARGET_GROUP_ARNS, ARN), (NLB_SYNC_LABELFILTERVALUE, "x")],
                NLB_SYNC_LABELFILTERVALUE,
                "without NLB_SYNC_LABELFILTERKEY",
            ),
            (vec![(TARGET_GROUP_ARNS, ARN), (KUBE_CLUSTER_NAME, "a b")], KUBE_CLUSTER_NAME, "white space"),
        ];
        for (vars, variable, needle) in cases {
            let err = config(&vars).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}");
            assert!(err.to_string().contains(needle), "{err} should contain {needle:?}");
        }
    }

    #[test]
    fn target_group_arns_are_checked_for_form() {
        assert!(is_target_group_arn(ARN));
        assert!(is_target_group_arn("arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/a/b"));
        for bad in [
            "",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a",
            "arn:aws:ec2:us-east-1:123456789012:targetgroup/a/b",
            "arn:aws:elasticloadbalancing:us-east-1:1234:targetgroup/a/b",
            "arn:aws:elasticloadbalancing::123456789012:targetgroup/a/b",
        ] {
            assert!(!is_target_group_arn(bad), "{bad}");
        }
    }
}
