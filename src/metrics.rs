//! CloudWatch metrics without extra API calls: one Embedded Metric Format
//! record per invocation, written to the function's log stream, from which
//! CloudWatch extracts the metrics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::report::Report;

/// Namespace of the metrics.
pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "KubeRtsync";

/// The record for one invocation. Dimensions: the cluster (or, with
/// `SOURCE_ROUTE_TABLE_ID` and no cluster name, the source table) and the VPC.
pub fn emf_record(namespace: &str, cluster: &str, report: &Report, throttled: usize, duration: Duration) -> Value {
    let t = &report.totals;
    let metric = |name: &str, unit: &str| json!({"Name": name, "Unit": unit});
    json!({
        "_aws": {
            "Timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["ClusterName", "VpcId"]],
                "Metrics": [
                    metric("RoutesCreated", "Count"),
                    metric("RoutesReplaced", "Count"),
                    metric("RoutesDeleted", "Count"),
                    metric("RouteChangesFailed", "Count"),
                    metric("TablesFailed", "Count"),
                    metric("ThrottledRetries", "Count"),
                    metric("SyncDuration", "Milliseconds"),
                    metric("ManagedRoutes", "Count"),
                ],
            }],
        },
        "ClusterName": cluster,
        "VpcId": report.vpc_id,
        "Outcome": report.outcome,
        "DryRun": report.dry_run,
        "RoutesCreated": if report.dry_run { 0 } else { t.created },
        "RoutesReplaced": if report.dry_run { 0 } else { t.replaced },
        "RoutesDeleted": if report.dry_run { 0 } else { t.deleted },
        "RouteChangesFailed": t.failed,
        "TablesFailed": t.tables_failed,
        "ThrottledRetries": throttled,
        "SyncDuration": duration.as_millis() as u64,
        "ManagedRoutes": report.managed_routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{TableReport, Totals};

    #[test]
    fn the_record_declares_every_metric_it_carries() {
        let mut report = Report::new(vec![], "vpc-0123456789abcdef0", false);
        report.managed_routes = 4;
        report.tables = vec![TableReport::new("rtb-1")];
        report.totals =
            Totals { created: 3, replaced: 1, deleted: 2, failed: 1, tables_failed: 1, ..Totals::default() };
        let record = emf_record("KubeRtsync", "k8s.example.com", &report, 5, Duration::from_millis(1234));
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "KubeRtsync");
        assert_eq!(directive["Dimensions"], json!([["ClusterName", "VpcId"]]));
        assert_eq!(record["ClusterName"], "k8s.example.com");
        assert_eq!(record["VpcId"], "vpc-0123456789abcdef0");
        let expected = [
            ("RoutesCreated", 3),
            ("RoutesReplaced", 1),
            ("RoutesDeleted", 2),
            ("RouteChangesFailed", 1),
            ("TablesFailed", 1),
            ("ThrottledRetries", 5),
            ("SyncDuration", 1234),
            ("ManagedRoutes", 4),
        ];
        let declared = directive["Metrics"].as_array().unwrap();
        assert_eq!(declared.len(), expected.len());
        for (name, value) in expected {
            assert!(declared.iter().any(|m| m["Name"] == name), "{name} is not declared");
            assert_eq!(record[name], value, "{name}");
        }
        assert!(record["_aws"]["Timestamp"].as_u64().unwrap() > 0);
    }

    #[test]
    fn a_dry_run_reports_no_changes_made() {
        let mut report = Report::new(vec![], "vpc-0123456789abcdef0", true);
        report.totals = Totals { created: 3, ..Totals::default() };
        let record = emf_record("X", "c", &report, 0, Duration::ZERO);
        assert_eq!(record["RoutesCreated"], 0);
        assert_eq!(record["DryRun"], true);
    }
}
