//! In-memory AWS services that behave like the real ones where kube-rtsync
//! depends on them (filters, pagination, error codes, conditional writes,
//! injected faults). Behind the `fakes` feature: the integration tests, the
//! benchmarks and the fuzz targets enable it; the Lambda binary never
//! carries it.

pub mod dynamodb;
pub mod ec2;
pub mod elbv2;
pub mod events;
pub mod faults;
pub mod route53;
