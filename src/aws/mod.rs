//! The doors to AWS. Each service sits behind a narrow trait that speaks
//! domain types, with an adapter over its SDK client; every adapter keeps
//! the AWS error code ([`error::AwsError`]) and every client is built by
//! [`sdk`] on the one HTTPS stack.

pub mod dynamodb;
pub mod ec2;
pub mod elbv2;
pub mod error;
pub mod events;
pub mod route53;
pub mod sdk;
