//! The targets planner: which registrations each target group gains and loses
//! so that it holds exactly the running nodes.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::aws::ec2::model::Leaving;
use crate::jobs::targets::model::{Instance, RegisteredTarget, TargetGroup};
use crate::shared::nodes::NodeRule;
use crate::shared::selector::TagSelector;

/// Targets per RegisterTargets / DeregisterTargets call.
///
/// The ELBv2 API reference documents no per-call maximum, so this is a chosen
/// bound, not an API limit. Other controllers chunk smaller (the AWS Load
/// Balancer Controller at 200, the Kubernetes AWS cloud provider at 100 after
/// large batches were intermittently rejected); lower this if that is seen.
pub const MAX_TARGETS_PER_CALL: usize = 500;

/// Why a configured target group cannot be worked on; every one of them stops
/// the job before any write.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupProblem {
    #[error("target group {arn}: not found")]
    NotFound { arn: String },
    #[error("target group {arn}: listed more than once")]
    Duplicate { arn: String },
    #[error("target group {arn}: target type is {target_type:?}, expected \"instance\"")]
    NotInstance { arn: String, target_type: String },
    #[error("target group {arn}: in {}, expected {expected}", .found.as_deref().unwrap_or("no VPC"))]
    OtherVpc { arn: String, found: Option<String>, expected: String },
    #[error("target group {arn}: has no port")]
    NoPort { arn: String },
}

impl GroupProblem {
    pub fn arn(&self) -> &str {
        match self {
            GroupProblem::NotFound { arn }
            | GroupProblem::Duplicate { arn }
            | GroupProblem::NotInstance { arn, .. }
            | GroupProblem::OtherVpc { arn, .. }
            | GroupProblem::NoPort { arn } => arn,
        }
    }
}

/// Checks every wanted group at once, so that one run reports all that is wrong
/// with the configuration.
pub fn check_groups(wanted_arns: &[String], found: &[TargetGroup], vpc_id: &str) -> Result<(), Vec<GroupProblem>> {
    let mut problems = Vec::new();
    for (i, arn) in wanted_arns.iter().enumerate() {
        if wanted_arns[..i].contains(arn) {
            problems.push(GroupProblem::Duplicate { arn: arn.clone() });
            continue;
        }
        let Some(group) = found.iter().find(|g| &g.arn == arn) else {
            problems.push(GroupProblem::NotFound { arn: arn.clone() });
            continue;
        };
        if group.target_type != "instance" {
            problems.push(GroupProblem::NotInstance { arn: arn.clone(), target_type: group.target_type.clone() });
        }
        if group.vpc_id.as_deref() != Some(vpc_id) {
            problems.push(GroupProblem::OtherVpc {
                arn: arn.clone(),
                found: group.vpc_id.clone(),
                expected: vpc_id.to_owned(),
            });
        }
        if group.port.is_none() {
            problems.push(GroupProblem::NoPort { arn: arn.clone() });
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetsPlan {
    pub groups: Vec<GroupPlan>,
    /// Running nodes, whether or not they needed registering.
    pub nodes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPlan {
    pub arn: String,
    pub name: Option<String>,
    pub port: Option<u16>,
    pub register: Vec<Change>,
    pub deregister: Vec<Change>,
    /// Deregistrations held back by the guard: `TARGET_NODE_TAGS` matches
    /// no instance of the VPC at all, so "no longer matches" more likely
    /// means a wrong selector than nodes re-tagged (see [`plan`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<Change>,
    /// Registrations that are not ours and are left alone.
    pub foreign: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub instance_id: String,
    pub port: Option<u16>,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Reason {
    NodeRunning,
    /// Carries the EC2 state name.
    NodeNotRunning(String),
    InstanceGone,
    /// Carries the node selector the instance fails.
    NoLongerMatches(TagSelector),
    /// The node is leaving (rule 4): deregistered while it runs, so that the
    /// load balancer drains it in time.
    Leaving(Leaving),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NodeRunning => f.write_str("running node"),
            Reason::NodeNotRunning(state) => write!(f, "node is {state}"),
            Reason::InstanceGone => f.write_str("instance no longer exists"),
            Reason::NoLongerMatches(selector) => write!(f, "instance of the cluster no longer matches {selector}"),
            Reason::Leaving(why) => write!(f, "{why}"),
        }
    }
}

impl TargetsPlan {
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(GroupPlan::is_empty)
    }

    pub fn registrations(&self) -> usize {
        self.groups.iter().map(|g| g.register.len()).sum()
    }

    pub fn deregistrations(&self) -> usize {
        self.groups.iter().map(|g| g.deregister.len()).sum()
    }

    pub fn foreign(&self) -> usize {
        self.groups.iter().map(|g| g.foreign).sum()
    }

    pub fn withheld(&self) -> usize {
        self.groups.iter().map(|g| g.withheld.len()).sum()
    }
}

impl GroupPlan {
    pub fn is_empty(&self) -> bool {
        self.register.is_empty() && self.deregister.is_empty()
    }

    /// One RegisterTargets call per batch.
    pub fn register_batches(&self) -> impl Iterator<Item = &[Change]> {
        self.register.chunks(MAX_TARGETS_PER_CALL)
    }

    /// One DeregisterTargets call per batch.
    pub fn deregister_batches(&self) -> impl Iterator<Item = &[Change]> {
        self.deregister.chunks(MAX_TARGETS_PER_CALL)
    }
}

/// What to do with one registration, given who owns its target.
enum Fate {
    Keep,
    Foreign,
    Deregister(Reason),
}

/// Plans every group against the same view of the instances.
///
/// `instances` must be every instance of `vpc_id` (in any state): a registered
/// `i-…` id missing from it is taken to be gone. Groups are expected to have
/// passed [`check_groups`].
///
/// The guard: when no instance of the VPC, in any state, is a node (the
/// selector matches nothing), the deregistrations of running cluster instances
/// that "no longer match" are withheld rather than planned. A selector with a
/// typo, or naming a Kubernetes label that is not an instance tag, would
/// otherwise take every node out of every group at once. Nodes that stop or go
/// are still deregistered.
pub fn plan(
    groups: &[(TargetGroup, Vec<RegisteredTarget>)],
    instances: &[Instance],
    rule: &NodeRule,
    vpc_id: &str,
) -> TargetsPlan {
    let mut by_id: BTreeMap<&str, &Instance> = BTreeMap::new();
    for instance in instances {
        by_id.entry(instance.id.as_str()).or_insert(instance);
    }
    // BTreeMap order makes every register list come out sorted by id.
    let running_nodes: Vec<&str> = by_id
        .values()
        .filter(|i| i.is_running() && !i.is_leaving() && rule.selects(i, vpc_id))
        .map(|i| i.id.as_str())
        .collect();
    let selector_matches_nothing = rule.matches_no_instance(by_id.values().copied(), vpc_id);
    let groups = groups
        .iter()
        .map(|(group, registered)| {
            let mut plan = plan_group(group, registered, &by_id, &running_nodes, rule, vpc_id);
            if selector_matches_nothing {
                let (held, kept) =
                    plan.deregister.into_iter().partition(|c| matches!(c.reason, Reason::NoLongerMatches(_)));
                (plan.withheld, plan.deregister) = (held, kept);
            }
            plan
        })
        .collect();
    TargetsPlan { groups, nodes: running_nodes.len() }
}

fn plan_group(
    group: &TargetGroup,
    registered: &[RegisteredTarget],
    by_id: &BTreeMap<&str, &Instance>,
    running_nodes: &[&str],
    rule: &NodeRule,
    vpc_id: &str,
) -> GroupPlan {
    let register = running_nodes
        .iter()
        .filter(|id| !registered.iter().any(|r| r.id == **id && r.port == group.port && !r.is_draining()))
        .map(|id| Change { instance_id: (*id).to_owned(), port: group.port, reason: Reason::NodeRunning })
        .collect();

    let mut deregister = Vec::new();
    let mut foreign = 0;
    for target in registered {
        match fate(target, group.port, by_id, rule, vpc_id) {
            Fate::Keep => {}
            Fate::Foreign => foreign += 1,
            Fate::Deregister(_) if target.is_draining() => {}
            Fate::Deregister(reason) => {
                deregister.push(Change { instance_id: target.id.clone(), port: target.port, reason })
            }
        }
    }
    deregister.sort_by(|a, b| (&a.instance_id, a.port).cmp(&(&b.instance_id, b.port)));
    // ELBv2 reports each (id, port) once; a duplicate in the input must still
    // not become two calls.
    deregister.dedup_by(|a, b| a.instance_id == b.instance_id && a.port == b.port);

    GroupPlan {
        arn: group.arn.clone(),
        name: group.name.clone(),
        port: group.port,
        register,
        deregister,
        withheld: Vec::new(),
        foreign,
    }
}

fn fate(
    target: &RegisteredTarget,
    group_port: Option<u16>,
    by_id: &BTreeMap<&str, &Instance>,
    rule: &NodeRule,
    vpc_id: &str,
) -> Fate {
    // IP addresses (and anything else that is not an instance id) are never
    // ours.
    if !target.id.starts_with("i-") {
        return Fate::Foreign;
    }
    let Some(instance) = by_id.get(target.id.as_str()) else {
        return Fate::Deregister(Reason::InstanceGone);
    };
    if instance.vpc_id != vpc_id {
        return Fate::Foreign;
    }
    if rule.selects(instance, vpc_id) {
        if !(instance.is_running() || instance.is_pending()) {
            return Fate::Deregister(Reason::NodeNotRunning(instance.state.clone()));
        }
        // Like a node that stops, every registration of a leaving node goes: it
        // is about to stop serving all of them.
        if let Some(why) = &instance.leaving {
            return Fate::Deregister(Reason::Leaving(why.clone()));
        }
        // A node's registration at another port was made by someone else, for
        // their own listener.
        return if target.port == group_port { Fate::Keep } else { Fate::Foreign };
    }
    match (rule.selector(), rule.cluster()) {
        // Without a cluster there is no telling a former node from an instance
        // that never was one.
        (Some(selector), Some(_)) if rule.is_cluster_instance(instance) => {
            Fate::Deregister(Reason::NoLongerMatches(selector.clone()))
        }
        _ => Fate::Foreign,
    }
}

impl fmt::Display for TargetsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{group}")?;
        }
        Ok(())
    }
}

impl fmt::Display for GroupPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_deref().unwrap_or(&self.arn))?;
        match self.port {
            Some(port) => write!(f, " (port {port})")?,
            None => f.write_str(" (no port)")?,
        }
        if self.is_empty() && self.withheld.is_empty() {
            return f.write_str("\n  in sync");
        }
        for (sign, changes) in [('+', &self.register), ('-', &self.deregister), ('?', &self.withheld)] {
            for change in changes {
                write!(f, "\n  {sign} {}", change.instance_id)?;
                // Only an off-port registration needs its port spelled out to
                // be told apart.
                if let Some(port) = change.port.filter(|_| change.port != self.port) {
                    write!(f, ":{port}")?;
                }
                write!(f, " ({})", change.reason)?;
                if sign == '?' {
                    f.write_str(" withheld: the selector matches no instance of the VPC")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VPC: &str = "vpc-1";
    const NODE_TAGS: &[(&str, &str)] = &[("role", "node"), ("KubernetesCluster", "prod")];

    fn instance(id: &str, state: &str, tags: &[(&str, &str)]) -> Instance {
        Instance::new(id, VPC, state).with_tags(tags)
    }

    fn node(id: &str, state: &str) -> Instance {
        instance(id, state, NODE_TAGS)
    }

    fn group(name: &str, port: u16) -> TargetGroup {
        TargetGroup {
            arn: format!("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/{name}/0123456789abcdef"),
            name: Some(name.into()),
            target_type: "instance".into(),
            vpc_id: Some(VPC.into()),
            port: Some(port),
            protocol: Some("TCP".into()),
        }
    }

    fn reg(id: &str, port: u16, state: &str) -> RegisteredTarget {
        RegisteredTarget { id: id.into(), port: Some(port), state: state.into() }
    }

    fn rule(selector: Option<&str>, cluster: Option<&str>) -> NodeRule {
        NodeRule::new(selector.map(|s| TagSelector::parse(s).unwrap()), cluster.map(str::to_owned)).unwrap()
    }

    fn cluster_rule() -> NodeRule {
        rule(Some("role=node"), Some("prod"))
    }

    /// Plans a single group at port 30080.
    fn plan_one(registered: Vec<RegisteredTarget>, instances: &[Instance], rule: &NodeRule) -> GroupPlan {
        let plan = plan(&[(group("web", 30080), registered)], instances, rule, VPC);
        plan.groups.into_iter().next().unwrap()
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(|c| format!("{} {:?} {}", c.instance_id, c.port, c.reason)).collect()
    }

    #[test]
    fn a_new_running_node_is_registered_at_the_group_port() {
        let g = plan_one(
            vec![reg("i-a", 30080, "healthy")],
            &[node("i-a", "running"), node("i-b", "running")],
            &cluster_rule(),
        );
        assert_eq!(lines(&g.register), ["i-b Some(30080) running node"]);
        assert!(g.deregister.is_empty());
        assert_eq!(g.foreign, 0);
    }

    #[test]
    fn a_registered_node_in_any_live_health_state_is_left_registered() {
        for state in ["initial", "healthy", "unhealthy", "unused", "unavailable"] {
            let g = plan_one(vec![reg("i-a", 30080, state)], &[node("i-a", "running")], &cluster_rule());
            assert!(g.is_empty(), "{state}: {g}");
        }
    }

    #[test]
    fn a_node_that_is_not_running_is_deregistered_with_its_state() {
        for state in ["stopping", "stopped", "shutting-down", "terminated"] {
            let g = plan_one(vec![reg("i-a", 30080, "healthy")], &[node("i-a", state)], &cluster_rule());
            assert_eq!(lines(&g.deregister), [format!("i-a Some(30080) node is {state}")], "{state}");
            assert!(g.register.is_empty());
        }
    }

    #[test]
    fn a_leaving_node_is_deregistered_while_it_runs_and_never_registered() {
        let scheduled = Leaving::Scheduled { code: "instance-stop".into(), not_before: None };
        for why in [Leaving::SpotInterruption, scheduled] {
            let registered = vec![reg("i-a", 8080, "healthy"), reg("i-a", 30080, "healthy")];
            let instances =
                [node("i-a", "running").leaving_for(why.clone()), node("i-b", "running").leaving_for(why.clone())];
            let g = plan_one(registered, &instances, &cluster_rule());
            assert!(g.register.is_empty(), "{why}: {g}");
            assert_eq!(lines(&g.deregister), [format!("i-a Some(8080) {why}"), format!("i-a Some(30080) {why}")]);
        }
    }

    #[test]
    fn a_leaving_node_already_draining_is_not_deregistered_again() {
        let g = plan_one(
            vec![reg("i-a", 30080, "draining")],
            &[node("i-a", "running").leaving_for(Leaving::SpotInterruption)],
            &cluster_rule(),
        );
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.to_string(), "web (port 30080)\n  in sync");
    }

    #[test]
    fn a_leaving_instance_that_is_not_a_node_is_left_alone() {
        let other = instance("i-x", "running", &[("role", "db")]).leaving_for(Leaving::SpotInterruption);
        let g = plan_one(vec![reg("i-x", 30080, "healthy")], &[other], &rule(Some("role=node"), None));
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 1);
    }

    #[test]
    fn a_stopping_node_loses_every_registration_including_other_ports() {
        let registered = vec![reg("i-a", 8080, "healthy"), reg("i-a", 30080, "healthy")];
        let g = plan_one(registered, &[node("i-a", "stopping")], &cluster_rule());
        assert_eq!(lines(&g.deregister), ["i-a Some(8080) node is stopping", "i-a Some(30080) node is stopping"]);
    }

    #[test]
    fn a_pending_node_is_neither_registered_nor_deregistered() {
        let g = plan_one(
            vec![reg("i-a", 30080, "initial")],
            &[node("i-a", "pending"), node("i-b", "pending")],
            &cluster_rule(),
        );
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 0);
    }

    #[test]
    fn a_target_whose_instance_no_longer_exists_is_deregistered() {
        let g = plan_one(vec![reg("i-gone", 30080, "unhealthy")], &[], &cluster_rule());
        assert_eq!(lines(&g.deregister), ["i-gone Some(30080) instance no longer exists"]);
    }

    #[test]
    fn someone_elses_instance_of_the_vpc_is_left_alone_and_counted_as_foreign() {
        let others = [instance("i-db", "stopped", &[("role", "db")]), instance("i-web", "running", &[])];
        let g =
            plan_one(vec![reg("i-db", 30080, "unhealthy"), reg("i-web", 30080, "healthy")], &others, &cluster_rule());
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 2);
    }

    #[test]
    fn an_ip_target_is_left_alone_and_counted_as_foreign() {
        let g = plan_one(vec![reg("10.0.1.7", 30080, "healthy")], &[], &cluster_rule());
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 1);
    }

    #[test]
    fn an_instance_of_another_vpc_is_left_alone_even_when_tagged_as_a_node() {
        let mut elsewhere = node("i-x", "stopped");
        elsewhere.vpc_id = "vpc-2".into();
        let g = plan_one(vec![reg("i-x", 30080, "unused")], &[elsewhere], &cluster_rule());
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 1);
    }

    #[test]
    fn a_cluster_instance_that_loses_its_selector_tag_is_deregistered_when_the_cluster_is_set() {
        let former = instance("i-a", "running", &[("role", "ingress"), ("KubernetesCluster", "prod")]);
        let still = node("i-b", "running");
        let g = plan_one(
            vec![reg("i-a", 30080, "healthy"), reg("i-b", 30080, "healthy")],
            &[former, still],
            &cluster_rule(),
        );
        assert_eq!(lines(&g.deregister), ["i-a Some(30080) instance of the cluster no longer matches role=node"]);
        assert_eq!(g.foreign, 0);
    }

    #[test]
    fn a_selector_that_matches_no_instance_withholds_the_no_longer_matches_deregistrations() {
        // A typo: no instance carries role=nodes. The running cluster
        // instances stay registered; the stopped one still goes.
        let typo = rule(Some("role=nodes"), Some("prod"));
        let instances = [node("i-a", "running"), node("i-b", "running"), node("i-c", "stopped")];
        let registered = vec![reg("i-a", 30080, "healthy"), reg("i-b", 30080, "healthy"), reg("i-c", 30080, "unused")];
        let g = plan_one(registered.clone(), &instances, &typo);
        assert!(g.register.is_empty() && g.deregister.is_empty(), "{g}");
        assert_eq!(
            lines(&g.withheld),
            [
                "i-a Some(30080) instance of the cluster no longer matches role=nodes",
                "i-b Some(30080) instance of the cluster no longer matches role=nodes",
                "i-c Some(30080) instance of the cluster no longer matches role=nodes",
            ]
        );
        assert!(g.to_string().contains("? i-a (instance of the cluster no longer matches role=nodes) withheld"), "{g}");
        // A node that is gone is deregistered whatever the selector.
        let g = plan_one(vec![reg("i-z", 30080, "unused")], &instances, &typo);
        assert_eq!(lines(&g.deregister), ["i-z Some(30080) instance no longer exists"]);
        // One instance matching, in any state, and the same targets go.
        let mut with_one = instances.to_vec();
        with_one.push(instance("i-d", "stopped", &[("role", "nodes"), ("KubernetesCluster", "prod")]));
        let g = plan_one(registered, &with_one, &typo);
        assert!(g.withheld.is_empty());
        assert_eq!(g.deregister.len(), 3, "{g}");
    }

    #[test]
    fn an_instance_that_loses_its_selector_tag_is_left_alone_without_a_cluster() {
        let former = instance("i-a", "running", &[("role", "ingress"), ("KubernetesCluster", "prod")]);
        let g = plan_one(vec![reg("i-a", 30080, "healthy")], &[former], &rule(Some("role=node"), None));
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 1);
    }

    #[test]
    fn an_instance_of_another_cluster_is_left_alone() {
        let other = instance("i-a", "running", &[("role", "node"), ("KubernetesCluster", "staging")]);
        let g = plan_one(vec![reg("i-a", 30080, "healthy")], &[other], &cluster_rule());
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 1);
    }

    #[test]
    fn a_draining_target_is_not_deregistered_again() {
        let registered = vec![reg("i-a", 30080, "draining"), reg("i-gone", 30080, "draining")];
        let g = plan_one(registered, &[node("i-a", "stopped")], &cluster_rule());
        assert!(g.is_empty(), "{g}");
        assert_eq!(g.foreign, 0);
    }

    #[test]
    fn a_running_node_whose_registration_is_draining_is_registered_again() {
        let g = plan_one(vec![reg("i-a", 30080, "draining")], &[node("i-a", "running")], &cluster_rule());
        assert_eq!(lines(&g.register), ["i-a Some(30080) running node"]);
        assert!(g.deregister.is_empty());
    }

    #[test]
    fn a_node_registered_at_another_port_is_also_registered_at_the_group_port() {
        let g = plan_one(vec![reg("i-a", 8080, "healthy")], &[node("i-a", "running")], &cluster_rule());
        assert_eq!(lines(&g.register), ["i-a Some(30080) running node"]);
        assert!(g.deregister.is_empty(), "the other port's registration is someone else's");
        assert_eq!(g.foreign, 1);
    }

    #[test]
    fn each_group_registers_the_nodes_at_its_own_port() {
        let groups = [(group("http", 30080), vec![]), (group("https", 30443), vec![reg("i-a", 30080, "healthy")])];
        let plan = plan(&groups, &[node("i-a", "running")], &cluster_rule(), VPC);
        assert_eq!(lines(&plan.groups[0].register), ["i-a Some(30080) running node"]);
        assert_eq!(lines(&plan.groups[1].register), ["i-a Some(30443) running node"]);
        assert_eq!(plan.groups[1].foreign, 1);
        assert_eq!(plan.registrations(), 2);
    }

    #[test]
    fn a_selector_only_rule_takes_nodes_of_any_cluster() {
        let g = plan_one(vec![], &[instance("i-a", "running", &[("role", "node")])], &rule(Some("role=node"), None));
        assert_eq!(lines(&g.register), ["i-a Some(30080) running node"]);
    }

    #[test]
    fn a_cluster_only_rule_takes_every_instance_of_the_cluster() {
        let instances = [
            instance("i-a", "running", &[("kubernetes.io/cluster/prod", "owned")]),
            instance("i-b", "running", &[("KubernetesCluster", "prod")]),
            instance("i-c", "running", &[]),
        ];
        let g = plan_one(vec![], &instances, &rule(None, Some("prod")));
        assert_eq!(lines(&g.register), ["i-a Some(30080) running node", "i-b Some(30080) running node"]);
    }

    #[test]
    fn changes_come_out_ordered_by_instance_id_whatever_the_input_order() {
        let instances =
            [node("i-c", "running"), node("i-a", "running"), node("i-z", "stopped"), node("i-m", "stopped")];
        let registered =
            vec![reg("i-z", 30080, "healthy"), reg("i-gone", 30080, "healthy"), reg("i-m", 30080, "healthy")];
        let g = plan_one(registered, &instances, &cluster_rule());
        let ids = |c: &[Change]| c.iter().map(|c| c.instance_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&g.register), ["i-a", "i-c"]);
        assert_eq!(ids(&g.deregister), ["i-gone", "i-m", "i-z"]);
    }

    #[test]
    fn a_duplicated_registration_is_deregistered_once() {
        let g = plan_one(vec![reg("i-gone", 30080, "healthy"), reg("i-gone", 30080, "healthy")], &[], &cluster_rule());
        assert_eq!(g.deregister.len(), 1);
    }

    #[test]
    fn nodes_counts_only_running_nodes() {
        let instances =
            [node("i-a", "running"), node("i-b", "pending"), node("i-c", "stopped"), instance("i-d", "running", &[])];
        let plan = plan(&[(group("web", 30080), vec![])], &instances, &cluster_rule(), VPC);
        assert_eq!(plan.nodes, 1);
    }

    #[test]
    fn a_plan_with_nothing_to_change_is_empty() {
        let plan = plan(
            &[(group("web", 30080), vec![reg("i-a", 30080, "healthy")])],
            &[node("i-a", "running")],
            &cluster_rule(),
            VPC,
        );
        assert!(plan.is_empty());
        assert_eq!((plan.registrations(), plan.deregistrations()), (0, 0));
    }

    #[test]
    fn batches_are_cut_at_the_per_call_maximum() {
        let instances: Vec<Instance> =
            (0..MAX_TARGETS_PER_CALL * 2 + 1).map(|n| node(&format!("i-{n:05}"), "running")).collect();
        let g = plan_one(vec![], &instances, &cluster_rule());
        let sizes: Vec<usize> = g.register_batches().map(<[Change]>::len).collect();
        assert_eq!(sizes, [MAX_TARGETS_PER_CALL, MAX_TARGETS_PER_CALL, 1]);
        assert_eq!(g.deregister_batches().count(), 0);
    }

    #[test]
    fn the_display_shows_each_group_with_its_changes() {
        let mut unnamed = group("api", 30443);
        unnamed.name = None;
        let former = instance("i-04", "running", &[("role", "ingress"), ("KubernetesCluster", "prod")]);
        let instances = [node("i-01", "running"), node("i-02", "stopping"), node("i-03", "running"), former];
        let groups = [
            (
                group("web", 30080),
                vec![
                    reg("i-02", 30080, "healthy"),
                    reg("i-02", 8080, "healthy"),
                    reg("i-03", 30080, "healthy"),
                    reg("i-04", 30080, "healthy"),
                    reg("i-09", 30080, "unhealthy"),
                    reg("10.0.0.5", 30080, "healthy"),
                ],
            ),
            (unnamed, vec![reg("i-01", 30443, "healthy"), reg("i-03", 30443, "healthy")]),
        ];
        let plan = plan(&groups, &instances, &cluster_rule(), VPC);
        assert_eq!(
            plan.to_string(),
            "\
web (port 30080)
  + i-01 (running node)
  - i-02:8080 (node is stopping)
  - i-02 (node is stopping)
  - i-04 (instance of the cluster no longer matches role=node)
  - i-09 (instance no longer exists)
arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/0123456789abcdef (port 30443)
  in sync"
        );
        assert_eq!((plan.registrations(), plan.deregistrations(), plan.foreign(), plan.nodes), (1, 4, 1, 2));
    }

    fn arn(name: &str) -> String {
        group(name, 1).arn
    }

    #[test]
    fn check_groups_accepts_instance_groups_of_the_vpc_with_a_port() {
        assert_eq!(check_groups(&[arn("web"), arn("api")], &[group("api", 443), group("web", 80)], VPC), Ok(()));
    }

    #[test]
    fn check_groups_rejects_an_ip_group() {
        let mut ip = group("web", 80);
        ip.target_type = "ip".into();
        let problems = check_groups(&[arn("web")], &[ip], VPC).unwrap_err();
        assert_eq!(problems, [GroupProblem::NotInstance { arn: arn("web"), target_type: "ip".into() }]);
        assert_eq!(
            problems[0].to_string(),
            format!("target group {}: target type is \"ip\", expected \"instance\"", arn("web"))
        );
    }

    #[test]
    fn check_groups_rejects_a_group_of_another_vpc() {
        let mut other = group("web", 80);
        other.vpc_id = Some("vpc-2".into());
        let problems = check_groups(&[arn("web")], &[other], VPC).unwrap_err();
        assert_eq!(problems[0].to_string(), format!("target group {}: in vpc-2, expected vpc-1", arn("web")));
    }

    #[test]
    fn check_groups_rejects_a_missing_arn() {
        let problems = check_groups(&[arn("web"), arn("gone")], &[group("web", 80)], VPC).unwrap_err();
        assert_eq!(problems, [GroupProblem::NotFound { arn: arn("gone") }]);
        assert_eq!(problems[0].to_string(), format!("target group {}: not found", arn("gone")));
    }

    #[test]
    fn check_groups_rejects_a_group_without_a_port() {
        let mut portless = group("web", 80);
        portless.port = None;
        let problems = check_groups(&[arn("web")], &[portless], VPC).unwrap_err();
        assert_eq!(problems, [GroupProblem::NoPort { arn: arn("web") }]);
    }

    #[test]
    fn check_groups_reports_every_problem_of_every_group() {
        let lambda = TargetGroup {
            arn: arn("fn"),
            name: Some("fn".into()),
            target_type: "lambda".into(),
            vpc_id: None,
            port: None,
            protocol: None,
        };
        let problems = check_groups(&[arn("fn"), arn("web"), arn("fn")], &[lambda], VPC).unwrap_err();
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                format!("target group {}: target type is \"lambda\", expected \"instance\"", arn("fn")),
                format!("target group {}: in no VPC, expected vpc-1", arn("fn")),
                format!("target group {}: has no port", arn("fn")),
                format!("target group {}: not found", arn("web")),
                format!("target group {}: listed more than once", arn("fn")),
            ]
        );
        assert!(problems.iter().all(|p| [arn("fn"), arn("web")].contains(&p.arn().to_owned())));
    }
}
