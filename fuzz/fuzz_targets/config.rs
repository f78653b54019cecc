//! Any text as the configuration variables: parsing gives a configuration
//! or an error naming one of the variables, never a panic.
#![no_main]

use kube_rtsync::jobs::routes::config::{self, Config};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 12] = [
    config::VPC_ID,
    config::KUBE_CLUSTER_NAME,
    config::SOURCE_ROUTE_TABLE_ID,
    config::KUBE_ROUTE_CIDRS,
    config::PRIVATE_RT_FILTERS,
    config::DRY_RUN,
    config::MAX_WRITES_PER_SECOND,
    config::WRITE_BURST,
    config::ALLOW_EMPTY_SOURCE,
    config::ROUTE_TABLE_LIMIT,
    config::APPLY_CONCURRENCY,
    config::ROUTE_WAIT_SECONDS,
];

fuzz_target!(|data: &[u8]| {
    // The input is split on NUL into the variables' values, in order.
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\0').collect();
    let lookup = |name: &str| {
        let i = NAMES.iter().position(|n| *n == name)?;
        values.get(i).map(|v| v.to_string())
    };
    match Config::from_lookup(lookup) {
        Ok(c) => assert!(c.vpc_id.starts_with("vpc-")),
        Err(e) => assert!(NAMES.contains(&e.variable)),
    }
});
