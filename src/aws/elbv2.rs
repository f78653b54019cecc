//! The narrow ELBv2 port the targets job needs, and its
//! `aws-sdk-elasticloadbalancingv2` adapter. Domain types only cross it;
//! every failure keeps its AWS error code.

use std::future::Future;

use aws_sdk_elasticloadbalancingv2::types as sdk;
use serde::{Deserialize, Serialize};

use crate::aws::error::{AwsError, sdk_error};

/// A target group as ELBv2 describes it; strings are kept as the API spells
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub arn: String,
    pub name: Option<String>,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    pub vpc_id: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
}

/// One registration in a target group: ELBv2 allows the same id several times
/// at different ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredTarget {
    pub id: String,
    pub port: Option<u16>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining` or
    /// `unavailable`.
    pub state: String,
}

impl RegisteredTarget {
    /// A draining registration is already on its way out: it neither needs
    /// deregistering nor counts as present.
    pub fn is_draining(&self) -> bool {
        self.state == "draining"
    }
}

/// A target group ARN ELBv2 does not know.
pub const TARGET_GROUP_NOT_FOUND: &str = "TargetGroupNotFound";
/// A target ELBv2 refuses (not running, not in the group's VPC) or, on
/// deregistration, one that is not registered.
pub const INVALID_TARGET: &str = "InvalidTarget";

/// One target to register or deregister: an instance id, at a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetRef {
    pub id: String,
    pub port: Option<u16>,
}

/// The ELBv2 calls kube-rtsync makes. Implemented by [`AwsElbv2`] and by
/// `FakeElbv2` (feature `fakes`).
pub trait Elbv2: Send + Sync {
    /// The target groups with these ARNs (all of them, or an error).
    fn describe_target_groups(
        &self,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<TargetGroup>, AwsError>> + Send;

    /// Every registration of the group, with its health state.
    fn describe_target_health(&self, arn: &str)
    -> impl Future<Output = Result<Vec<RegisteredTarget>, AwsError>> + Send;

    fn register_targets(&self, arn: &str, targets: &[TargetRef]) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn deregister_targets(&self, arn: &str, targets: &[TargetRef])
    -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The [`Elbv2`] port over `aws-sdk-elasticloadbalancingv2`.
#[derive(Clone, Debug)]
pub struct AwsElbv2 {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl AwsElbv2 {
    pub fn new(client: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        AwsElbv2 { client }
    }
}

fn descriptions(targets: &[TargetRef]) -> Vec<sdk::TargetDescription> {
    targets
        .iter()
        .map(|t| sdk::TargetDescription::builder().id(&t.id).set_port(t.port.map(i32::from)).build())
        .collect()
}

impl Elbv2 for AwsElbv2 {
    async fn describe_target_groups(&self, arns: &[String]) -> Result<Vec<TargetGroup>, AwsError> {
        let out = self
            .client
            .describe_target_groups()
            .set_target_group_arns(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTargetGroups", e))?;
        Ok(out
            .target_groups()
            .iter()
            .map(|g| TargetGroup {
                arn: g.target_group_arn().unwrap_or_default().to_owned(),
                name: g.target_group_name().map(str::to_owned),
                target_type: g.target_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                vpc_id: g.vpc_id().map(str::to_owned),
                port: g.port().and_then(|p| u16::try_from(p).ok()),
                protocol: g.protocol().map(|p| p.as_str().to_owned()),
            })
            .collect())
    }

    async fn describe_target_health(&self, arn: &str) -> Result<Vec<RegisteredTarget>, AwsError> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTargetHealth", e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let target = d.target()?;
                Some(RegisteredTarget {
                    id: target.id()?.to_owned(),
                    port: target.port().and_then(|p| u16::try_from(p).ok()),
                    state: d.target_health().and_then(|h| h.state()).map(|s| s.as_str().to_owned()).unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn register_targets(&self, arn: &str, targets: &[TargetRef]) -> Result<(), AwsError> {
        self.client
            .register_targets()
            .target_group_arn(arn)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .map_err(|e| sdk_error("RegisterTargets", e))?;
        Ok(())
    }

    async fn deregister_targets(&self, arn: &str, targets: &[TargetRef]) -> Result<(), AwsError> {
        self.client
            .deregister_targets()
            .target_group_arn(arn)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .map_err(|e| sdk_error("DeregisterTargets", e))?;
        Ok(())
    }
}
