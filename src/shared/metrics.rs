//! CloudWatch metrics without extra API calls: one Embedded Metric Format
//! record per invocation, written to the function's log stream, from which
//! CloudWatch extracts the metrics. Each job names its metrics and
//! dimensions; the record's shape lives here.

use serde_json::{Map, Value, json};

/// A CloudWatch unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// What the runner measured of one invocation, beside the job's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Attempts the SDK retried after throttling.
    pub throttled: usize,
    pub events: crate::shared::changes::Published,
    pub duration: std::time::Duration,
}

/// One of a job's own metrics in its invocation's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Changes made: zero in a dry run, whose changes are only planned.
    Made(&'static str, usize),
    /// What the invocation saw or left (nodes, failures, withheld changes),
    /// dry run or not.
    Seen(&'static str, usize),
}

/// The EMF record of one invocation of `job`: the envelope every job's
/// record carries ([`Record::invocation`], from the report and the runner's
/// measures) with the job's dimensions and its own counts.
pub fn job_record<R: crate::shared::report::JobReport>(
    namespace: &str,
    job: &'static str,
    dimensions: Vec<(&'static str, String)>,
    report: &R,
    run: &Invocation,
    counts: &[Count],
) -> Value {
    let dry_run = report.dry_run();
    let record = Record::invocation(namespace, dimensions, job, report.outcome(), dry_run, report.writes_failed(), run);
    counts
        .iter()
        .fold(record, |record, count| match *count {
            Count::Made(name, n) => record.metric(name, Unit::Count, if dry_run { 0 } else { n as u64 }),
            Count::Seen(name, n) => record.metric(name, Unit::Count, n as u64),
        })
        .build()
}

/// One EMF record under construction.
#[derive(Clone, Debug)]
pub struct Record {
    namespace: String,
    /// The job, when the record is an invocation's: a second dimension set
    /// (`Job` before the job's own) keeps the jobs' common metrics apart.
    job: Option<&'static str>,
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, u64)>,
    properties: Map<String, Value>,
}

impl Record {
    /// A record in `namespace` whose metrics carry these dimensions.
    pub fn new(namespace: &str, dimensions: Vec<(&'static str, String)>) -> Self {
        Record { namespace: namespace.to_owned(), job: None, dimensions, metrics: Vec::new(), properties: Map::new() }
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: u64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    /// A field that is logged but is not a metric (searchable in Logs
    /// Insights).
    pub fn property(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.properties.insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    /// A record with what every job's record carries: the job (a dimension,
    /// beside the job's own dimensions, which stay a dimension set of their
    /// own so that existing series and alarms continue), how the invocation
    /// ended, whether it was a dry run, the version (logged fields), the
    /// writes that failed or were not started, and what the runner measured
    /// ([`Invocation`]: throttled attempts, change events, duration).
    pub fn invocation(
        namespace: &str,
        dimensions: Vec<(&'static str, String)>,
        job: &'static str,
        outcome: crate::shared::report::Outcome,
        dry_run: bool,
        writes_failed: usize,
        run: &Invocation,
    ) -> Self {
        let mut record = Record::new(namespace, dimensions)
            .property("Version", crate::VERSION)
            .property("Outcome", outcome)
            .property("DryRun", dry_run)
            .metric("ThrottledRetries", Unit::Count, run.throttled as u64)
            .metric("WritesFailed", Unit::Count, writes_failed as u64)
            .metric("EventsPublished", Unit::Count, run.events.events as u64)
            .metric("EventsFailed", Unit::Count, run.events.failed as u64)
            .metric("SyncDuration", Unit::Milliseconds, run.duration.as_millis() as u64);
        record.job = Some(job);
        record
    }

    pub fn build(self) -> Value {
        let mut record = Map::new();
        let declared: Vec<Value> =
            self.metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.name()})).collect();
        let own: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        let mut dimension_sets = vec![own.clone()];
        if let Some(job) = self.job {
            dimension_sets.push(std::iter::once("Job").chain(own).collect());
            record.insert("Job".into(), Value::String(job.to_owned()));
        }
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": crate::shared::clock::now_ms(),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimension_sets,
                    "Metrics": declared,
                }],
            }),
        );
        for (name, value) in self.dimensions {
            record.insert(name.to_owned(), Value::String(value));
        }
        record.extend(self.properties);
        for (name, _, value) in self.metrics {
            record.insert(name.to_owned(), json!(value));
        }
        Value::Object(record)
    }
}

/// The level an EMF line carries, so that Lambda's application log-level
/// filter never drops it: with the JSON log format, a line without a
/// `level` counts as INFO and is dropped at WARN and above, which would
/// silence every alarm on a custom metric. The record takes the configured
/// level itself (`AWS_LAMBDA_LOG_LEVEL`), the lowest one that passes.
pub fn line_level(configured: Option<&str>) -> &'static str {
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let configured = configured.map(str::trim).unwrap_or_default();
    LEVELS.into_iter().find(|level| level.eq_ignore_ascii_case(configured)).unwrap_or("INFO")
}

/// The record as the one line the function prints, with its `level`.
pub fn line(record: Value) -> String {
    let mut record = record;
    if let Value::Object(fields) = &mut record {
        let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
        fields.insert("level".into(), Value::String(line_level(configured.as_deref()).to_owned()));
    }
    record.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_declares_its_metrics_and_dimensions() {
        let record = Record::new("Ns", vec![("ClusterName", "c".into()), ("VpcId", "vpc-1".into())])
            .property("Outcome", "synced")
            .metric("A", Unit::Count, 3)
            .metric("B", Unit::Milliseconds, 7)
            .build();
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Ns");
        assert_eq!(directive["Dimensions"], json!([["ClusterName", "VpcId"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "A", "Unit": "Count"}, {"Name": "B", "Unit": "Milliseconds"}])
        );
        assert_eq!((record["A"].clone(), record["B"].clone()), (json!(3), json!(7)));
        assert_eq!((record["ClusterName"].clone(), record["Outcome"].clone()), (json!("c"), json!("synced")));
        assert!(record["_aws"]["Timestamp"].as_u64().unwrap() > 0);
    }

    #[test]
    fn an_invocation_record_adds_a_job_dimension_set_and_keeps_the_job_s_own() {
        let record = Record::invocation(
            "Ns",
            vec![("VpcId", "vpc-1".into())],
            "eip",
            crate::shared::report::Outcome::Synced,
            false,
            3,
            &Invocation {
                throttled: 2,
                events: crate::shared::changes::Published { events: 4, failed: 1 },
                duration: std::time::Duration::from_millis(5),
            },
        )
        .build();
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["VpcId"], ["Job", "VpcId"]]));
        assert_eq!(record["Job"], "eip");
        let version = record["Version"].as_str().unwrap();
        assert!(version.starts_with(concat!(env!("CARGO_PKG_VERSION"), "+")), "{version}");
        assert_eq!((record["WritesFailed"].clone(), record["ThrottledRetries"].clone()), (json!(3), json!(2)));
        assert_eq!((record["EventsPublished"].clone(), record["EventsFailed"].clone()), (json!(4), json!(1)));
        assert_eq!(record["SyncDuration"], json!(5));
    }

    #[test]
    fn an_emf_line_carries_the_configured_level_so_the_level_filter_keeps_it() {
        let cases = [
            (None, "INFO"),
            (Some("WARN"), "WARN"),
            (Some("error"), "ERROR"),
            (Some("FATAL"), "FATAL"),
            (Some("DEBUG"), "DEBUG"),
            (Some("nonsense"), "INFO"),
        ];
        for (configured, expected) in cases {
            assert_eq!(line_level(configured), expected, "{configured:?}");
        }
    }
}
