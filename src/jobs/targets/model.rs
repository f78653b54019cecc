//! What the targets job observes: target groups, their registrations, the VPC's
//! instances (which of them are nodes is [`crate::shared::nodes::NodeRule`]'s
//! to say).

pub use crate::aws::ec2::model::Instance;

pub use crate::aws::elbv2::{RegisteredTarget, TargetGroup};
