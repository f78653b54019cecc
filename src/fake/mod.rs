//! In-memory AWS services that behave like the real ones where kube-rtsync
//! depends on them (filters, pagination, error codes, injected faults).
//! Behind the `fakes` feature: the integration tests, the benchmarks and
//! the fuzz targets enable it; the Lambda binary never carries it.

pub mod ec2;
pub mod elbv2;
