//! Properties of the targets planner over random fleets, checked against the
//! contract's rules restated independently.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;

use kube_rtsync::jobs::targets::model::{Instance, RegisteredTarget, TargetGroup};
use kube_rtsync::jobs::targets::plan::{TargetsPlan, plan};
use kube_rtsync::shared::nodes::NodeRule;
use kube_rtsync::shared::selector::TagSelector;

const VPC: &str = "vpc-1";
const EC2_STATES: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down", "terminated"];
const TARGET_STATES: &[&str] = &["initial", "healthy", "unhealthy", "unused", "draining", "unavailable"];
const TAG_KEYS: &[&str] =
    &["role", "team", "KubernetesCluster", "kubernetes.io/cluster/prod", "kubernetes.io/cluster/staging"];
const TAG_VALUES: &[&str] = &["node", "ingress", "", "prod", "staging", "owned"];
// Registered ids include instances that do not exist (i-8…i-b), IP addresses
// and an odd id.
const TARGET_IDS: &[&str] = &["i-0", "i-1", "i-2", "i-3", "i-4", "i-5", "i-6", "i-7", "i-8", "i-9", "i-a", "i-b"];
const OTHER_IDS: &[&str] = &["10.0.0.1", "10.0.0.2", "arn:aws:lambda:fn"];
const PORTS: &[u16] = &[80, 443, 8080, 30080];

/// The node rule as plain data, so that the test can judge nodes without the
/// crate's own matching.
#[derive(Debug, Clone)]
struct Rule {
    selector: Option<Vec<(String, Option<String>)>>,
    cluster: Option<String>,
}

impl Rule {
    fn selector_matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|pairs| {
            pairs.iter().all(|(k, v)| match (tags.get(k), v) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(actual), Some(wanted)) => actual == wanted,
            })
        })
    }

    fn in_cluster(&self, tags: &BTreeMap<String, String>) -> bool {
        self.cluster.as_ref().is_none_or(|c| {
            tags.get("KubernetesCluster") == Some(c) || tags.contains_key(&format!("kubernetes.io/cluster/{c}"))
        })
    }

    fn is_node(&self, i: &Instance) -> bool {
        i.vpc_id == VPC && self.selector_matches(&i.tags) && self.in_cluster(&i.tags)
    }

    fn to_node_rule(&self) -> NodeRule {
        let selector = self.selector.as_ref().map(|pairs| {
            let text: Vec<String> = pairs
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            TagSelector::parse(&text.join(",")).unwrap()
        });
        NodeRule::new(selector, self.cluster.clone()).unwrap()
    }

    /// The contract's rule 3: may this id be deregistered at all?
    fn may_deregister(&self, id: &str, instances: &[Instance]) -> bool {
        match instances.iter().find(|i| i.id == id) {
            None => id.starts_with("i-"),
            Some(i) if i.vpc_id != VPC => false,
            Some(i) => {
                let stopped_node = self.is_node(i) && i.state != "running" && i.state != "pending";
                let former_node = self.cluster.is_some() && self.in_cluster(&i.tags) && !self.selector_matches(&i.tags);
                stopped_node || former_node
            }
        }
    }
}

fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        select(TAG_KEYS).prop_map(String::from),
        select(TAG_VALUES).prop_map(String::from),
        0..4,
    )
}

fn instances() -> impl Strategy<Value = Vec<Instance>> {
    let one = (select(&["vpc-1", "vpc-1", "vpc-1", "vpc-2"][..]), select(EC2_STATES), tags());
    prop::collection::btree_map(select(&TARGET_IDS[..8]), one, 0..8).prop_map(|by_id| {
        by_id
            .into_iter()
            .map(|(id, (vpc, state, tags))| Instance {
                id: id.into(),
                vpc_id: vpc.into(),
                state: state.into(),
                tags,
                ..Instance::default()
            })
            .collect()
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    let pair = (select(&["role", "team"][..]), prop::option::of(select(&["node", "ingress", "prod"][..])));
    let selector = prop::option::of(
        prop::collection::btree_map(pair.0, pair.1, 1..3)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v.map(str::to_owned))).collect::<Vec<_>>()),
    );
    let cluster = prop::option::of(select(&["prod", "staging"][..]).prop_map(String::from));
    (selector, cluster).prop_map(|(selector, cluster)| {
        // The contract forbids a rule with neither half.
        let cluster = if selector.is_none() && cluster.is_none() { Some("prod".to_owned()) } else { cluster };
        Rule { selector, cluster }
    })
}

fn registrations() -> impl Strategy<Value = Vec<RegisteredTarget>> {
    let id = prop_oneof![4 => select(TARGET_IDS), 1 => select(OTHER_IDS)];
    prop::collection::btree_map((id, select(PORTS)), select(TARGET_STATES), 0..12).prop_map(|m| {
        m.into_iter()
            .map(|((id, port), state)| RegisteredTarget { id: id.into(), port: Some(port), state: state.into() })
            .collect()
    })
}

fn groups() -> impl Strategy<Value = Vec<(TargetGroup, Vec<RegisteredTarget>)>> {
    prop::collection::vec((select(PORTS), registrations()), 1..4).prop_map(|groups| {
        groups
            .into_iter()
            .enumerate()
            .map(|(n, (port, registered))| {
                let group = TargetGroup {
                    arn: format!("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg{n}/0"),
                    name: Some(format!("tg{n}")),
                    target_type: "instance".into(),
                    vpc_id: Some(VPC.into()),
                    port: Some(port),
                    protocol: Some("TCP".into()),
                };
                (group, registered)
            })
            .collect()
    })
}

/// What ELBv2 would hold after the plan's calls succeed.
fn apply(
    groups: &[(TargetGroup, Vec<RegisteredTarget>)],
    plan: &TargetsPlan,
) -> Vec<(TargetGroup, Vec<RegisteredTarget>)> {
    groups
        .iter()
        .zip(&plan.groups)
        .map(|((group, registered), planned)| {
            let mut after: Vec<RegisteredTarget> = registered
                .iter()
                .filter(|r| !planned.deregister.iter().any(|c| c.instance_id == r.id && c.port == r.port))
                .cloned()
                .collect();
            for change in &planned.register {
                match after.iter_mut().find(|r| r.id == change.instance_id && r.port == change.port) {
                    Some(existing) => existing.state = "initial".into(),
                    None => after.push(RegisteredTarget {
                        id: change.instance_id.clone(),
                        port: change.port,
                        state: "initial".into(),
                    }),
                }
            }
            (group.clone(), after)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_plan_deregisters_a_target_that_is_not_ours(groups in groups(), instances in instances(), rule in rule()) {
        let plan = plan(&groups, &instances, &rule.to_node_rule(), VPC);
        for ((_, registered), planned) in groups.iter().zip(&plan.groups) {
            for change in &planned.deregister {
                prop_assert!(rule.may_deregister(&change.instance_id, &instances), "{change:?} is not ours\n{plan}");
                let live = registered
                    .iter()
                    .any(|r| r.id == change.instance_id && r.port == change.port && r.state != "draining");
                prop_assert!(live, "{change:?} is not a live registration\n{plan}");
            }
        }
    }

    #[test]
    fn every_registration_is_a_running_node_at_the_group_port(groups in groups(), instances in instances(), rule in rule()) {
        let plan = plan(&groups, &instances, &rule.to_node_rule(), VPC);
        for ((group, _), planned) in groups.iter().zip(&plan.groups) {
            for change in &planned.register {
                let instance = instances.iter().find(|i| i.id == change.instance_id);
                prop_assert!(instance.is_some_and(|i| rule.is_node(i) && i.state == "running"), "{change:?}\n{plan}");
                prop_assert_eq!(change.port, group.port);
            }
        }
    }

    #[test]
    fn applying_a_plan_then_planning_again_changes_nothing(groups in groups(), instances in instances(), rule in rule()) {
        let node_rule = rule.to_node_rule();
        let first = plan(&groups, &instances, &node_rule, VPC);
        let second = plan(&apply(&groups, &first), &instances, &node_rule, VPC);
        prop_assert!(second.is_empty(), "first:\n{first}\nsecond:\n{second}");
    }

    #[test]
    fn applying_a_plan_leaves_every_running_node_live_in_every_group(
        groups in groups(),
        instances in instances(),
        rule in rule(),
    ) {
        let after = apply(&groups, &plan(&groups, &instances, &rule.to_node_rule(), VPC));
        let running_nodes = instances.iter().filter(|i| rule.is_node(i) && i.state == "running");
        for node in running_nodes {
            for (group, registered) in &after {
                let live = registered.iter().any(|r| r.id == node.id && r.port == group.port && r.state != "draining");
                prop_assert!(live, "{} is not live in {}", node.id, group.arn);
            }
        }
    }

    #[test]
    fn a_selector_parses_back_from_its_canonical_form(
        items in prop::collection::vec(("[a-z./]{1,6}", prop::option::of("[a-z=]{0,4}")), 1..5),
    ) {
        let text: Vec<String> = items
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!(" {k} = {v} "),
                None => k.clone(),
            })
            .collect();
        if let Ok(selector) = TagSelector::parse(&text.join(",")) {
            prop_assert_eq!(TagSelector::parse(&selector.to_string()), Ok(selector));
        }
    }
}
