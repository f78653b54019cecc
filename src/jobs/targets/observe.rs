//! What the targets job reads, in one round trip: the listed target groups
//! (one call per 20 ARNs), each group's registrations, the VPC's
//! instances and the instances that are leaving, all at once.

use super::model::{RegisteredTarget, TargetGroup};
use super::plan::GroupProblem;
use super::{Error, Problem, Reconciler};
use crate::aws::ec2::model::{Filter, Instance};
use crate::aws::ec2::{Instances, LeavingInstances, all_pages, mark_leaving};
use crate::aws::elbv2::{Elbv2, TARGET_GROUP_NOT_FOUND};

/// Groups per `DescribeTargetGroups` call.
pub const GROUPS_PER_DESCRIBE: usize = 20;

impl<E: Instances + LeavingInstances, L: Elbv2> Reconciler<'_, E, L> {
    /// The groups with their registrations, and the VPC's instances (those
    /// leaving marked). An unknown ARN is reported as such, by name.
    pub async fn observe(&self) -> Result<(Vec<(TargetGroup, Vec<RegisteredTarget>)>, Vec<Instance>), Error> {
        let arns = &self.config.target_group_arns;
        let vpc = [Filter::new("vpc-id", [self.config.vpc_id.as_str()])];
        let describe_groups = futures::future::try_join_all(
            arns.chunks(GROUPS_PER_DESCRIBE).map(|c| self.elbv2.describe_target_groups(c)),
        );
        let describe_health = futures::future::join_all(arns.iter().map(|arn| self.elbv2.describe_target_health(arn)));
        let describe_instances = all_pages("DescribeInstances", |t| self.ec2.describe_instances(&vpc, t));
        let describe_leaving = crate::aws::ec2::leaving_or_none(self.ec2);
        let (groups, health, instances, leaving) =
            futures::join!(describe_groups, describe_health, describe_instances, describe_leaving);
        let mut instances = instances.map_err(Error::Describe)?;
        mark_leaving(&mut instances, &leaving);
        let mut missing = Vec::new();
        let mut registrations = Vec::new();
        for (arn, result) in arns.iter().zip(health) {
            match result {
                Ok(targets) => registrations.push(targets),
                Err(e) if e.is_code(TARGET_GROUP_NOT_FOUND) => {
                    missing.push(GroupProblem::NotFound { arn: arn.clone() });
                    registrations.push(Vec::new());
                }
                Err(e) => return Err(Error::Describe(e)),
            }
        }
        if !missing.is_empty() {
            return Err(Error::Job(Problem::InvalidTargetGroups(missing)));
        }
        let groups: Vec<TargetGroup> = groups.map_err(Error::Describe)?.into_iter().flatten().collect();
        let paired = arns
            .iter()
            .zip(registrations)
            .filter_map(|(arn, targets)| groups.iter().find(|g| &g.arn == arn).map(|g| (g.clone(), targets)))
            .collect();
        Ok((paired, instances))
    }
}
