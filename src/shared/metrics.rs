//! CloudWatch metrics without extra API calls: one Embedded Metric Format
//! record per invocation, written to the function's log stream, from which
//! CloudWatch extracts the metrics. Each job names its metrics and
//! dimensions; the record's shape lives here.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// One EMF record under construction.
#[derive(Clone, Debug)]
pub struct Record {
    namespace: String,
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, u64)>,
    properties: Map<String, Value>,
}

impl Record {
    /// A record in `namespace` whose metrics carry these dimensions.
    pub fn new(namespace: &str, dimensions: Vec<(&'static str, String)>) -> Self {
        Record { namespace: namespace.to_owned(), dimensions, metrics: Vec::new(), properties: Map::new() }
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: u64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    /// A field that is logged but is not a metric (searchable in Logs Insights).
    pub fn property(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.properties.insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    /// A record with what every job's record carries: the job, how the
    /// invocation ended, whether it was a dry run (logged fields), the
    /// throttled attempts and the duration (metrics).
    pub fn invocation(
        namespace: &str,
        dimensions: Vec<(&'static str, String)>,
        job: &str,
        outcome: crate::shared::report::Outcome,
        dry_run: bool,
        throttled: usize,
        duration: std::time::Duration,
    ) -> Self {
        Record::new(namespace, dimensions)
            .property("Job", job)
            .property("Outcome", outcome)
            .property("DryRun", dry_run)
            .metric("ThrottledRetries", Unit::Count, throttled as u64)
            .metric("SyncDuration", Unit::Milliseconds, duration.as_millis() as u64)
    }

    pub fn build(self) -> Value {
        let mut record = Map::new();
        let declared: Vec<Value> =
            self.metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.name()})).collect();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
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
}
