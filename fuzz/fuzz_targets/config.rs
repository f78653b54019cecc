//! Any text as the configuration variables: parsing gives a configuration
//! or an error naming one of the variables, never a panic.
#![no_main]

use kube_rtsync::jobs::routes::config::{self, Config};
use libfuzzer_sys::fuzz_target;

/// The variables, in the order the input fills them: the contract's one list.
fn names() -> Vec<&'static str> {
    kube_rtsync::shared::config::SHARED_VARIABLES.iter().chain(config::VARIABLES).copied().collect()
}

fuzz_target!(|data: &[u8]| {
    // The input is split on NUL into the variables' values, in order.
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\0').collect();
    let names = names();
    let lookup = |name: &str| {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i).map(|v| v.to_string())
    };
    match Config::from_lookup(lookup) {
        Ok(c) => assert!(c.vpc_id.starts_with("vpc-")),
        Err(e) => assert!(names.contains(&e.variable)),
    }
});
