//! The configuration every job shares, and the helpers each job's own
//! configuration is parsed with.
//!
//! Configuration is read once, at init, through a lookup (a name to its
//! value, if set; the process environment in production). Any missing or
//! invalid value fails init with a message naming the variable and the form
//! it expects, so that a bad deployment never reaches a resource.

use std::fmt;

/// The VPC to work in. Every resource read for a decision or written belongs to
/// it.
pub const VPC_ID: &str = "VPC_ID";
/// Plan and report, change nothing.
pub const DRY_RUN: &str = "DRY_RUN";
/// Client-side pace of mutating calls per second; `0` disables the limiter.
pub const MAX_WRITES_PER_SECOND: &str = "MAX_WRITES_PER_SECOND";
/// Burst size of the write limiter.
pub const WRITE_BURST: &str = "WRITE_BURST";
/// CloudWatch namespace of the EMF records.
pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
/// EventBridge bus of the change events (a name or an ARN); `none` turns them
/// off.
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
/// How long (milliseconds) a Lambda's init may spend opening the
/// connections its first invocation will use; `0`: none.
pub const WARM_UP_MS: &str = "WARM_UP_MS";
/// The function's handler name, which Lambda passes to a custom runtime:
/// it picks the job.
pub const HANDLER: &str = "_HANDLER";

/// The variables every job reads: the one list the documentation, the
/// template and the fuzz target are checked against (`tests/contract.rs`).
pub const SHARED_VARIABLES: &[&str] =
    &[VPC_ID, DRY_RUN, MAX_WRITES_PER_SECOND, WRITE_BURST, METRICS_NAMESPACE, EVENT_BUS_NAME, WARM_UP_MS];

pub const DEFAULT_MAX_WRITES_PER_SECOND: f64 = 4.0;
pub const DEFAULT_WRITE_BURST: u32 = 20;
pub const DEFAULT_METRICS_NAMESPACE: &str = "KubeRtsync";
pub const DEFAULT_EVENT_BUS_NAME: &str = "default";
/// An in-Region TLS connection takes a few milliseconds; an endpoint that
/// does not answer within this costs init no more.
pub const DEFAULT_WARM_UP_MS: usize = 250;
/// The longest warm-up accepted (Lambda's init ends at 10 s).
pub const MAX_WARM_UP_MS: usize = 5000;
/// The value of [`EVENT_BUS_NAME`] that turns change events off.
pub const NO_EVENT_BUS: &str = "none";

/// The smallest pace accepted: slower than one write in 100 s is a typo,
/// and a rate near zero would make a wait overflow.
pub const MIN_WRITES_PER_SECOND: f64 = 0.01;

/// A configuration value that is missing or malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}; expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
    pub expected: &'static str,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>, expected: &'static str) -> Self {
        ConfigError { variable, problem: problem.into(), expected }
    }
}

/// A source of configuration values: the environment, or a map in tests.
/// Values are trimmed, and empty values count as unset.
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env(lookup)
    }

    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &'static str, expected: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::new(name, "is not set", expected))
    }

    pub fn bool(&self, name: &'static str) -> Result<bool, ConfigError> {
        parse_bool(name, self.get(name))
    }

    /// A whole number within `min..=max`, or `default` when unset.
    pub fn whole(
        &self,
        name: &'static str,
        default: usize,
        min: usize,
        max: usize,
        expected: &'static str,
    ) -> Result<usize, ConfigError> {
        parse_whole(name, self.get(name), default, min, max, expected)
    }

    /// An AWS id (`prefix` and at least 8 lowercase hex digits), if set.
    pub fn aws_id(
        &self,
        name: &'static str,
        prefix: &str,
        what: &str,
        expected: &'static str,
    ) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            Some(id) if !is_aws_id(&id, prefix) => {
                Err(ConfigError::new(name, format!("{:?} is not {what}", excerpt(&id)), expected))
            }
            other => Ok(other),
        }
    }
}

/// Client-side pacing of mutating calls (a token bucket).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WriteRate {
    /// Tokens added per second; `0` disables the limiter.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// The variables every job reads.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedConfig {
    pub vpc_id: String,
    pub dry_run: bool,
    pub write_rate: WriteRate,
    pub metrics_namespace: String,
    /// The bus of the change events; `None`: no events.
    pub event_bus: Option<String>,
    /// The longest a Lambda's init spends opening connections; zero: none.
    pub warm_up: std::time::Duration,
}

const VPC_ID_FORM: &str = "a VPC id such as vpc-0a1b2c3d4e5f67890";
const BOOL_FORM: &str = "true or false";
const RATE_FORM: &str = "a number of writes per second: 0 (disables the limiter) or from 0.01 up, e.g. 4";
const BURST_FORM: &str = "a whole number >= 1, e.g. 20";
const WARM_UP_FORM: &str = "a whole number of milliseconds from 0 (no warm-up) to 5000, e.g. 250";
const EVENT_BUS_FORM: &str = "an event bus name (1 to 256 of A-Z a-z 0-9 . - _ /), an event bus ARN, or none";
const NAMESPACE_FORM: &str =
    "a CloudWatch namespace: 1 to 255 of A-Z a-z 0-9 . - _ / # : and space, not starting with AWS/, e.g. KubeRtsync";

impl SharedConfig {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let vpc_id = env.require(VPC_ID, VPC_ID_FORM)?;
        if !is_aws_id(&vpc_id, "vpc-") {
            return Err(ConfigError::new(VPC_ID, format!("{:?} is not a VPC id", excerpt(&vpc_id)), VPC_ID_FORM));
        }
        let dry_run = env.bool(DRY_RUN)?;
        let per_second = match env.get(MAX_WRITES_PER_SECOND) {
            None => DEFAULT_MAX_WRITES_PER_SECOND,
            Some(v) => match v.parse::<f64>() {
                Ok(rate) if rate == 0.0 || (rate.is_finite() && rate >= MIN_WRITES_PER_SECOND) => rate,
                _ => {
                    return Err(ConfigError::new(
                        MAX_WRITES_PER_SECOND,
                        format!("{:?} is not a rate", excerpt(&v)),
                        RATE_FORM,
                    ));
                }
            },
        };
        let burst = env.whole(WRITE_BURST, DEFAULT_WRITE_BURST as usize, 1, u32::MAX as usize, BURST_FORM)? as u32;
        // `(_lookup)` distinguishes unset (the default) from set but empty
        // (an error: an EMF record with an empty namespace is dropped).
        let metrics_namespace = match (env.0)(METRICS_NAMESPACE) {
            None => DEFAULT_METRICS_NAMESPACE.to_owned(),
            Some(ns) => check_namespace(&ns)?,
        };
        let event_bus = match env.get(EVENT_BUS_NAME) {
            None => Some(DEFAULT_EVENT_BUS_NAME.to_owned()),
            Some(bus) if bus.eq_ignore_ascii_case(NO_EVENT_BUS) => None,
            Some(bus) => Some(check_event_bus(&bus)?),
        };
        let warm_up = env.whole(WARM_UP_MS, DEFAULT_WARM_UP_MS, 0, MAX_WARM_UP_MS, WARM_UP_FORM)?;
        Ok(SharedConfig {
            vpc_id,
            dry_run,
            write_rate: WriteRate { per_second, burst },
            metrics_namespace,
            event_bus,
            warm_up: std::time::Duration::from_millis(warm_up as u64),
        })
    }
}

/// A bus name as `PutEvents` takes it, or a bus ARN (another account's bus).
fn check_event_bus(bus: &str) -> Result<String, ConfigError> {
    let name_ok = |name: &str| {
        (1..=256).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    };
    let ok = match bus.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            parts.len() == 5
                && parts[1] == "events"
                && parts[4].strip_prefix("event-bus/").is_some_and(name_ok)
                && !parts[2].is_empty()
                && parts[3].len() == 12
                && parts[3].bytes().all(|b| b.is_ascii_digit())
        }
        None => name_ok(bus),
    };
    if ok {
        Ok(bus.to_owned())
    } else {
        Err(ConfigError::new(EVENT_BUS_NAME, format!("{:?} is not an event bus", excerpt(bus)), EVENT_BUS_FORM))
    }
}

fn check_namespace(ns: &str) -> Result<String, ConfigError> {
    let problem = |what: String| Err(ConfigError::new(METRICS_NAMESPACE, what, NAMESPACE_FORM));
    if ns.trim().is_empty() {
        return problem("is empty".into());
    }
    if ns.len() > 255 {
        return problem(format!("is {} characters long", ns.len()));
    }
    if let Some(c) = ns.chars().find(|c| !(c.is_ascii_alphanumeric() || ".-_/#: ".contains(*c))) {
        return problem(format!("{:?} holds the character {c:?}", excerpt(ns)));
    }
    if ns.starts_with("AWS/") {
        return problem(format!("{:?} is reserved for AWS services", excerpt(ns)));
    }
    Ok(ns.to_owned())
}

/// A job's configuration, read through a lookup (the environment, or the
/// command line's flags on top of it).
pub trait FromLookup: Sized {
    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError>;
}

/// Every job's configuration extends the shared one: `config.vpc_id`,
/// `config.dry_run` and `config.write_rate` read through to its `shared`
/// field, and `from_env` reads the process environment with the job's
/// `from_lookup`.
#[macro_export]
macro_rules! extends_shared_config {
    ($config:ty) => {
        impl $config {
            /// Reads the configuration from the process environment.
            pub fn from_env() -> Result<Self, $crate::shared::config::ConfigError> {
                Self::from_lookup(|name| std::env::var(name).ok())
            }
        }

        impl $crate::shared::config::FromLookup for $config {
            fn from_lookup(
                lookup: &dyn Fn(&str) -> Option<String>,
            ) -> Result<Self, $crate::shared::config::ConfigError> {
                <$config>::from_lookup(lookup)
            }
        }

        impl std::ops::Deref for $config {
            type Target = $crate::shared::config::SharedConfig;

            fn deref(&self) -> &Self::Target {
                &self.shared
            }
        }

        impl std::ops::DerefMut for $config {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.shared
            }
        }
    };
}

/// `prefix` followed by at least 8 lowercase hex digits, as EC2 ids are.
pub fn is_aws_id(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|hex| hex.len() >= 8 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// At most ~200 characters of a value, for error messages: a variable or an
/// event can hold anything, and the message must stay readable.
pub fn excerpt(value: &str) -> String {
    const MAX: usize = 200;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

pub fn parse_bool(variable: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(ConfigError::new(
            variable,
            format!("{:?} is not a boolean", excerpt(&value.unwrap_or_default())),
            BOOL_FORM,
        )),
    }
}

pub fn parse_whole(
    variable: &'static str,
    value: Option<String>,
    default: usize,
    min: usize,
    max: usize,
    expected: &'static str,
) -> Result<usize, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            variable,
            format!("{:?} is out of range or not a whole number", excerpt(&v)),
            expected,
        )),
    }
}

/// A comma-separated list, items trimmed; empty items are an error.
pub fn parse_list(variable: &'static str, value: &str, expected: &'static str) -> Result<Vec<String>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .map(|item| match item {
            "" => Err(ConfigError::new(variable, format!("{:?} has an empty entry", excerpt(value)), expected)),
            item => Ok(item.to_owned()),
        })
        .collect()
}

impl fmt::Display for WriteRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.per_second == 0.0 {
            f.write_str("unlimited")
        } else {
            write!(f, "{}/s (burst {})", self.per_second, self.burst)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn shared(vars: &[(&str, &str)]) -> Result<SharedConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = |name: &str| map.get(name).cloned();
        SharedConfig::from_env(&Env::new(&lookup))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = shared(&[(VPC_ID, "vpc-0123456789abcdef0")]).unwrap();
        assert!(!c.dry_run);
        assert_eq!(c.write_rate, WriteRate { per_second: 4.0, burst: 20 });
        assert_eq!(c.metrics_namespace, "KubeRtsync");
        assert_eq!(c.event_bus.as_deref(), Some("default"));
        assert_eq!(c.warm_up, std::time::Duration::from_millis(250));
    }

    #[test]
    fn the_warm_up_is_milliseconds_up_to_five_seconds_or_none() {
        let vpc = (VPC_ID, "vpc-0123456789abcdef0");
        for (value, ms) in [("0", 0), ("1", 1), ("5000", 5000), (" 40 ", 40)] {
            let c = shared(&[vpc, (WARM_UP_MS, value)]).unwrap();
            assert_eq!(c.warm_up, std::time::Duration::from_millis(ms), "{value}");
        }
        for bad in ["5001", "-1", "0.5", "250ms"] {
            let err = shared(&[vpc, (WARM_UP_MS, bad)]).unwrap_err();
            assert_eq!(err.variable, WARM_UP_MS, "{bad}");
            assert!(err.to_string().contains("expected a whole number of milliseconds"), "{err}");
        }
    }

    #[test]
    fn the_event_bus_is_a_name_an_arn_or_none() {
        let vpc = (VPC_ID, "vpc-0123456789abcdef0");
        let arn = "arn:aws:events:eu-west-1:123456789012:event-bus/platform-audit";
        let cases: [(&str, Option<&str>); 5] = [
            ("platform/kube-rtsync", Some("platform/kube-rtsync")),
            (arn, Some(arn)),
            ("none", None),
            ("NONE", None),
            ("  default ", Some("default")),
        ];
        for (value, expected) in cases {
            assert_eq!(shared(&[vpc, (EVENT_BUS_NAME, value)]).unwrap().event_bus.as_deref(), expected, "{value}");
        }
        for bad in
            ["my bus", "bus:1", "arn:aws:sns:eu-west-1:123456789012:topic", "arn:aws:events:eu-west-1:1234:event-bus/x"]
        {
            let err = shared(&[vpc, (EVENT_BUS_NAME, bad)]).unwrap_err();
            assert_eq!(err.variable, EVENT_BUS_NAME, "{bad}");
            assert!(err.to_string().contains("is not an event bus"), "{err}");
        }
        let long = "b".repeat(257);
        assert_eq!(shared(&[vpc, (EVENT_BUS_NAME, &long)]).unwrap_err().variable, EVENT_BUS_NAME);
    }

    #[test]
    fn bad_shared_values_name_their_variable() {
        let vpc = (VPC_ID, "vpc-0123456789abcdef0");
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (vec![], VPC_ID, "is not set"),
            (vec![(VPC_ID, "vpc-xyz")], VPC_ID, "is not a VPC id"),
            (vec![vpc, (DRY_RUN, "maybe")], DRY_RUN, "not a boolean"),
            (vec![vpc, (MAX_WRITES_PER_SECOND, "0.001")], MAX_WRITES_PER_SECOND, "not a rate"),
            (vec![vpc, (MAX_WRITES_PER_SECOND, "-1")], MAX_WRITES_PER_SECOND, "not a rate"),
            (vec![vpc, (MAX_WRITES_PER_SECOND, "NaN")], MAX_WRITES_PER_SECOND, "not a rate"),
            (vec![vpc, (WRITE_BURST, "0")], WRITE_BURST, "out of range"),
            (vec![vpc, (METRICS_NAMESPACE, "")], METRICS_NAMESPACE, "is empty"),
            (vec![vpc, (METRICS_NAMESPACE, "   ")], METRICS_NAMESPACE, "is empty"),
            (vec![vpc, (METRICS_NAMESPACE, "Kube$Rtsync")], METRICS_NAMESPACE, "holds the character '$'"),
            (vec![vpc, (METRICS_NAMESPACE, "AWS/EC2")], METRICS_NAMESPACE, "reserved"),
        ];
        for (vars, variable, needle) in cases {
            let err = shared(&vars).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}");
            assert!(err.to_string().contains(needle), "{err} should contain {needle:?}");
        }
        let long = "N".repeat(256);
        assert_eq!(shared(&[vpc, (METRICS_NAMESPACE, &long)]).unwrap_err().variable, METRICS_NAMESPACE);
    }

    #[test]
    fn the_smallest_rate_and_zero_are_accepted() {
        let vpc = (VPC_ID, "vpc-0123456789abcdef0");
        assert_eq!(shared(&[vpc, (MAX_WRITES_PER_SECOND, "0.01")]).unwrap().write_rate.per_second, 0.01);
        assert_eq!(shared(&[vpc, (MAX_WRITES_PER_SECOND, "0")]).unwrap().write_rate.per_second, 0.0);
        assert_eq!(
            shared(&[vpc, (METRICS_NAMESPACE, "Team/Kube Rtsync")]).unwrap().metrics_namespace,
            "Team/Kube Rtsync"
        );
    }

    #[test]
    fn long_values_are_quoted_in_part() {
        let long = format!("vpc-{}", "z".repeat(5000));
        let err = shared(&[(VPC_ID, &long)]).unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn lists_are_trimmed_and_refuse_empty_items() {
        assert_eq!(parse_list("X", " a , b ", "e").unwrap(), vec!["a", "b"]);
        assert!(parse_list("X", "a,,b", "e").is_err());
    }
}
