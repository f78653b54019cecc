//! Which instances are a job's nodes: instances of the VPC matching a tag
//! selector and tagged for the cluster, whichever of the two is set. The
//! targets and eip jobs select their nodes with it, and both hold back the
//! changes of a selector that matches no instance of the VPC (a typo, not a
//! cluster that lost every node).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::aws::ec2::model::Instance;
use crate::shared::selector::TagSelector;
use crate::shared::tags::is_cluster_member;

/// Which instances are nodes: those matching the selector and tagged for the
/// cluster, whichever are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRule {
    selector: Option<TagSelector>,
    cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NodeRuleError {
    #[error("a node rule needs a tag selector, a cluster name or both, else every instance of the VPC would be a node")]
    Unbounded,
    #[error("the cluster name is empty")]
    EmptyCluster,
}

impl NodeRule {
    pub fn new(selector: Option<TagSelector>, cluster: Option<String>) -> Result<NodeRule, NodeRuleError> {
        match (&selector, cluster.as_deref()) {
            (None, None) => Err(NodeRuleError::Unbounded),
            // An empty name would make `kubernetes.io/cluster/` a membership
            // tag and match nothing meaningful.
            (_, Some(name)) if name.trim().is_empty() => Err(NodeRuleError::EmptyCluster),
            _ => Ok(NodeRule { selector, cluster }),
        }
    }

    /// The rule of a selector alone (eip's `EIP_NODE_TAGS`).
    pub fn selector_only(selector: TagSelector) -> NodeRule {
        NodeRule { selector: Some(selector), cluster: None }
    }

    pub fn selector(&self) -> Option<&TagSelector> {
        self.selector.as_ref()
    }

    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// An instance of `vpc_id`, in any state, that the rule selects.
    pub fn selects(&self, instance: &Instance, vpc_id: &str) -> bool {
        instance.vpc_id == vpc_id
            && self.selector.as_ref().is_none_or(|s| s.matches(&instance.tags))
            && self.is_cluster_instance(instance)
    }

    /// Tagged for the configured cluster; with no cluster configured, every
    /// instance passes this half of the rule.
    pub fn is_cluster_instance(&self, instance: &Instance) -> bool {
        self.cluster.as_deref().is_none_or(|c| is_cluster_member(&instance.tags, c))
    }

    /// Whether no instance of `vpc_id` among `instances`, in any state, is a
    /// node: the guard of both jobs. A rule that selects nothing at all is
    /// taken for a mistyped selector, and the changes it would make to
    /// instances that "no longer match" are withheld.
    pub fn matches_no_instance<'a>(&self, instances: impl IntoIterator<Item = &'a Instance>, vpc_id: &str) -> bool {
        !instances.into_iter().any(|i| self.selects(i, vpc_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(vpc: &str, tags: &[(&str, &str)]) -> Instance {
        Instance::new("i-1", vpc, "running").with_tags(tags)
    }

    fn selector(s: &str) -> Option<TagSelector> {
        Some(TagSelector::parse(s).unwrap())
    }

    #[test]
    fn a_rule_needs_a_selector_or_a_cluster() {
        assert_eq!(NodeRule::new(None, None), Err(NodeRuleError::Unbounded));
        assert_eq!(NodeRule::new(None, Some(" ".into())), Err(NodeRuleError::EmptyCluster));
        assert!(NodeRule::new(selector("role"), None).is_ok());
        assert!(NodeRule::new(None, Some("prod".into())).is_ok());
    }

    #[test]
    fn a_selector_only_rule_ignores_cluster_tags() {
        let rule = NodeRule::new(selector("role=node"), None).unwrap();
        assert_eq!(rule, NodeRule::selector_only(TagSelector::parse("role=node").unwrap()));
        assert!(rule.selects(&instance("vpc-1", &[("role", "node")]), "vpc-1"));
        assert!(!rule.selects(&instance("vpc-1", &[("role", "master")]), "vpc-1"));
    }

    #[test]
    fn a_cluster_only_rule_takes_every_instance_of_the_cluster() {
        let rule = NodeRule::new(None, Some("prod".into())).unwrap();
        assert!(rule.selects(&instance("vpc-1", &[("KubernetesCluster", "prod")]), "vpc-1"));
        assert!(rule.selects(&instance("vpc-1", &[("kubernetes.io/cluster/prod", "owned")]), "vpc-1"));
        assert!(!rule.selects(&instance("vpc-1", &[("KubernetesCluster", "dev")]), "vpc-1"));
    }

    #[test]
    fn a_node_must_match_both_halves_when_both_are_set() {
        let rule = NodeRule::new(selector("role=node"), Some("prod".into())).unwrap();
        assert!(rule.selects(&instance("vpc-1", &[("role", "node"), ("KubernetesCluster", "prod")]), "vpc-1"));
        assert!(!rule.selects(&instance("vpc-1", &[("role", "node")]), "vpc-1"));
        assert!(!rule.selects(&instance("vpc-1", &[("KubernetesCluster", "prod")]), "vpc-1"));
    }

    #[test]
    fn an_instance_of_another_vpc_is_never_a_node() {
        let rule = NodeRule::new(selector("role=node"), None).unwrap();
        assert!(!rule.selects(&instance("vpc-2", &[("role", "node")]), "vpc-1"));
    }

    #[test]
    fn the_guard_holds_when_no_instance_of_the_vpc_is_a_node_in_any_state() {
        let rule = NodeRule::new(selector("role=node"), None).unwrap();
        let stopped = instance("vpc-1", &[("role", "node")]).in_state("stopped");
        let cases: [(Vec<Instance>, bool); 4] = [
            (vec![], true),
            (vec![instance("vpc-1", &[("role", "web")]), instance("vpc-2", &[("role", "node")])], true),
            (vec![stopped], false),
            (vec![instance("vpc-1", &[("role", "web")]), instance("vpc-1", &[("role", "node")])], false),
        ];
        for (instances, none) in cases {
            assert_eq!(rule.matches_no_instance(&instances, "vpc-1"), none, "{instances:?}");
        }
    }
}
