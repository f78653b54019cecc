//! The report an invocation returns (and logs): what was planned, what was
//! done, what failed and why.

use serde::Serialize;
use serde_json::Value;

use super::plan::{RouteAction, SkippedRoute, WithheldAction};
use crate::aws::ec2::model::{Destination, Target};
use crate::aws::error::{AwsError, FailureKind};
use crate::shared::event::Trigger;
use crate::shared::metrics::{Count, Invocation, job_record};
pub use crate::shared::report::Outcome;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreatedRoute {
    pub destination: Destination,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplacedRoute {
    pub destination: Destination,
    pub from: Target,
    pub to: Target,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeletedRoute {
    pub destination: Destination,
    pub target: Target,
}

/// An action that failed, with the AWS error code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    #[serde(flatten)]
    pub action: RouteAction,
    pub operation: &'static str,
    pub kind: FailureKind,
    pub code: Option<String>,
    pub message: String,
    pub hint: &'static str,
}

impl Failure {
    pub fn new(action: RouteAction, error: &AwsError) -> Self {
        Failure {
            action,
            operation: error.operation,
            kind: error.kind,
            code: error.code.clone(),
            message: error.message.clone(),
            hint: hint(error),
        }
    }
}

/// [`AwsError::hint`] with the routes job's context: which of its variables
/// to look at.
pub fn hint(error: &AwsError) -> &'static str {
    use crate::aws::ec2::{ROUTE_LIMIT_EXCEEDED, ROUTE_TABLE_NOT_FOUND};
    match error.code() {
        _ if error.is_unauthorized() => error.hint(),
        Some(ROUTE_TABLE_NOT_FOUND) => "check the route table id and that it is in VPC_ID",
        Some(ROUTE_LIMIT_EXCEEDED) => {
            "raise the route table quota (Service Quotas: routes per route table) and ROUTE_TABLE_LIMIT with it, or narrow PRIVATE_RT_FILTERS / KUBE_ROUTE_CIDRS"
        }
        _ if error.is_throttling() => "lower MAX_WRITES_PER_SECOND; the next invocation continues the work",
        _ => error.hint(),
    }
}

/// Why an action was not started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotStarted {
    #[serde(flatten)]
    pub action: RouteAction,
    pub reason: String,
}

/// What happened to one target table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableReport {
    pub route_table_id: String,
    /// The table's `Name` tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created: Vec<CreatedRoute>,
    pub replaced: Vec<ReplacedRoute>,
    pub deleted: Vec<DeletedRoute>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_started: Vec<NotStarted>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<WithheldAction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedRoute>,
    /// Entries left out of this table's lists to keep the report within
    /// Lambda's limits (see [`Report::bounded`]); the totals count them.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Entries a report returned to Lambda lists at most, over all its tables.
/// A resync of EC2's maxima (199 tables x 999 routes) would otherwise list
/// about 200,000 changes: some 20 MB, past Lambda's 6 MB response and
/// CloudWatch's 256 KB log event. 500 entries stay under ~150 KB; every
/// change is also logged on its own line as it is made.
pub const LISTED_ENTRIES: usize = 500;

impl TableReport {
    pub fn new(route_table_id: &str) -> Self {
        TableReport { route_table_id: route_table_id.to_owned(), ..TableReport::default() }
    }

    /// Records an action as done (or, in a dry run, as planned).
    pub fn record(&mut self, action: &RouteAction) {
        match action.clone() {
            RouteAction::Create { destination, target } => self.created.push(CreatedRoute { destination, target }),
            RouteAction::Replace { destination, from, to } => {
                self.replaced.push(ReplacedRoute { destination, from, to })
            }
            RouteAction::Delete { destination, target } => self.deleted.push(DeletedRoute { destination, target }),
        }
    }

    /// Whether every write that was tried or due went through. Changes a
    /// guard withheld do not count: no retry can make them, so they are
    /// reported and counted (`ChangesWithheld`), not failed.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty() && self.not_started.is_empty()
    }

    /// Orders every list by destination: writes finish in any order.
    pub fn sort(&mut self) {
        self.created.sort_by(|a, b| a.destination.cmp(&b.destination));
        self.replaced.sort_by(|a, b| a.destination.cmp(&b.destination));
        self.deleted.sort_by(|a, b| a.destination.cmp(&b.destination));
        self.failures.sort_by(|a, b| a.action.destination().cmp(b.action.destination()));
        self.not_started.sort_by(|a, b| a.action.destination().cmp(b.action.destination()));
    }

    pub fn changes(&self) -> usize {
        self.created.len() + self.replaced.len() + self.deleted.len()
    }
}

/// Counts over every table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub tables: usize,
    pub tables_changed: usize,
    pub tables_failed: usize,
    pub created: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failed: usize,
    pub not_started: usize,
    pub withheld: usize,
    pub skipped: usize,
}

/// The invocation's report: the JSON response and the last log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
    pub vpc_id: String,
    pub source_route_table_id: Option<String>,
    pub dry_run: bool,
    /// Managed routes in the source (copyable or not).
    pub managed_routes: usize,
    pub tables: Vec<TableReport>,
    /// Source routes that could not be mirrored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedRoute>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What stopped a later pass of the invocation after earlier writes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The wait for a new node's route, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_wait: Option<RouteWait>,
    pub totals: Totals,
}

/// How the wait for a new node's pod route went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteWait {
    pub instance_id: String,
    /// Describes of the source made while waiting.
    pub checks: usize,
    pub found: bool,
    pub waited_ms: u64,
}

impl Report {
    /// A report with nothing done yet: as it stands, the report of an
    /// invocation with nothing to reconcile; a reconcile fills it in and
    /// calls [`Report::finish`].
    pub fn new(triggers: Vec<Trigger>, vpc_id: &str, dry_run: bool) -> Self {
        Report {
            outcome: Outcome::NothingToDo,
            triggers,
            vpc_id: vpc_id.to_owned(),
            source_route_table_id: None,
            dry_run,
            managed_routes: 0,
            tables: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            route_wait: None,
            totals: Totals::default(),
        }
    }

    /// Fills in the totals and the outcome from the tables.
    pub fn finish(mut self) -> Self {
        let mut t = Totals { tables: self.tables.len(), skipped: self.skipped.len(), ..Totals::default() };
        for table in &self.tables {
            t.created += table.created.len();
            t.replaced += table.replaced.len();
            t.deleted += table.deleted.len();
            t.failed += table.failures.len();
            t.not_started += table.not_started.len();
            t.withheld += table.withheld.len();
            t.skipped += table.skipped.len();
            t.tables_changed += usize::from(table.changes() > 0);
            t.tables_failed += usize::from(!table.is_complete());
        }
        self.totals = t;
        self.outcome = if t.tables_failed > 0 || !self.errors.is_empty() {
            Outcome::Incomplete
        } else if t.created + t.replaced + t.deleted == 0 {
            Outcome::InSync
        } else if self.dry_run {
            Outcome::DryRun
        } else {
            Outcome::Synced
        };
        self
    }

    pub fn is_complete(&self) -> bool {
        self.outcome != Outcome::Incomplete
    }

    /// Records that a later pass of the invocation failed (`during` says
    /// which): what the earlier passes wrote stays in the report, and the
    /// invocation is incomplete so that Lambda retries it.
    pub fn interrupted(mut self, during: &str, err: &impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{during} failed after writes were made");
        self.errors.push(format!("{during} failed: {err}"));
        self.finish()
    }

    /// Keeps at most `max` entries in the tables' lists, the most telling
    /// first: failures, then withheld, not started, deleted, replaced,
    /// created and skipped, table by table within each kind. What is cut is
    /// counted in each table's `omitted`; the totals and the outcome, taken
    /// before, stay exact. Call it last: [`Report::finish`] counts lists.
    pub fn bounded(mut self, max: usize) -> Self {
        fn keep<T>(list: &mut Vec<T>, budget: &mut usize) -> usize {
            let kept = list.len().min(*budget);
            *budget -= kept;
            let cut = list.len() - kept;
            list.truncate(kept);
            cut
        }
        let mut budget = max;
        for kind in 0..7 {
            for table in &mut self.tables {
                table.omitted += match kind {
                    0 => keep(&mut table.failures, &mut budget),
                    1 => keep(&mut table.withheld, &mut budget),
                    2 => keep(&mut table.not_started, &mut budget),
                    3 => keep(&mut table.deleted, &mut budget),
                    4 => keep(&mut table.replaced, &mut budget),
                    5 => keep(&mut table.created, &mut budget),
                    _ => keep(&mut table.skipped, &mut budget),
                };
            }
        }
        let cut = self.skipped.len().saturating_sub(budget);
        self.skipped.truncate(budget);
        if cut > 0 {
            self.warnings.push(format!("{cut} unmirrored source routes left out of this report"));
        }
        self
    }

    /// Adds what a later pass of the same invocation did, table by table.
    pub fn absorb(mut self, later: Report) -> Self {
        for table in later.tables {
            match self.tables.iter_mut().find(|t| t.route_table_id == table.route_table_id) {
                Some(mine) => {
                    mine.created.extend(table.created);
                    mine.replaced.extend(table.replaced);
                    mine.deleted.extend(table.deleted);
                    mine.failures.extend(table.failures);
                    mine.not_started = table.not_started;
                    mine.withheld = table.withheld;
                    mine.skipped = table.skipped;
                }
                None => self.tables.push(table),
            }
        }
        self.tables.sort_by(|a, b| a.route_table_id.cmp(&b.route_table_id));
        self.managed_routes = later.managed_routes;
        self.skipped = later.skipped;
        self.warnings.extend(later.warnings);
        self.errors.extend(later.errors);
        self.finish()
    }
}

impl crate::shared::report::JobReport for Report {
    fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn changes(&self) -> usize {
        self.totals.created + self.totals.replaced + self.totals.deleted
    }

    fn render(&self, colour: bool) -> String {
        super::render::render(self, colour)
    }

    /// The routes report keeps failures and writes not started per table,
    /// not as write statuses; the same rule. Failures left out of a bounded
    /// report, and a later pass that stopped, count as retryable.
    fn retry_can_finish(&self) -> bool {
        let listed: usize = self.tables.iter().map(|t| t.failures.len()).sum();
        let retryable = self
            .tables
            .iter()
            .flat_map(|t| &t.failures)
            .any(|f| crate::aws::error::retry_can_help(f.kind, f.code.as_deref()));
        retryable
            || self.totals.failed > listed
            || !self.errors.is_empty()
            || (self.totals.failed == 0 && self.totals.not_started > 0)
    }

    fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn writes_failed(&self) -> usize {
        self.totals.failed + self.totals.not_started
    }

    /// One per route written, in the plan's own words. (The report lists at
    /// most [`LISTED_ENTRIES`] entries: past that, a resync's remaining
    /// routes are logged, not published.)
    fn changes_made(&self, arns: &crate::shared::changes::Arns) -> Vec<crate::shared::changes::Change> {
        use crate::shared::changes::Change;
        if self.dry_run {
            return Vec::new();
        }
        let source = self.source_route_table_id.as_deref().unwrap_or("the source table");
        let mut out = Vec::new();
        for table in &self.tables {
            let change = |line: String, from: Option<&Target>, to: Option<&Target>, reason: String| Change {
                resource: table.route_table_id.clone(),
                arns: arns.ec2("route-table", &table.route_table_id).into_iter().collect(),
                change: line,
                from: from.map(ToString::to_string),
                to: to.map(ToString::to_string),
                reason,
            };
            for r in &table.created {
                let line = format!("+ {} -> {}", r.destination, r.target);
                out.push(change(line, None, Some(&r.target), format!("mirrors {source}")));
            }
            for r in &table.replaced {
                let line = format!("~ {} {} -> {}", r.destination, r.from, r.to);
                out.push(change(line, Some(&r.from), Some(&r.to), format!("mirrors {source}")));
            }
            for r in &table.deleted {
                let line = format!("- {} {}", r.destination, r.target);
                out.push(change(line, Some(&r.target), None, format!("not in {source}")));
            }
        }
        out
    }
}

/// The first dimension of the routes job's metrics: the cluster, or, with
/// `SOURCE_ROUTE_TABLE_ID` and no cluster name, the source table (under a
/// name that says so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimension(pub &'static str, pub String);

impl Dimension {
    pub fn source_table(id: &str) -> Self {
        Dimension("SourceRouteTableId", id.to_owned())
    }

    /// The configuration's: the cluster when named, else the source table.
    pub fn of(config: &super::config::Config) -> Self {
        use super::config::SourceSelector;
        match (&config.cluster_name, &config.source) {
            (Some(cluster), _) => Dimension::from(cluster.as_str()),
            (None, SourceSelector::RouteTableId(id)) => Dimension::source_table(id),
            (None, SourceSelector::ClusterTag(name)) => Dimension::from(name.as_str()),
        }
    }
}

impl From<&str> for Dimension {
    fn from(cluster: &str) -> Self {
        Dimension("ClusterName", cluster.to_owned())
    }
}

/// The EMF record of one invocation. Dimensions: the cluster (or the source
/// table) and the VPC.
pub fn emf_record(namespace: &str, dimension: impl Into<Dimension>, report: &Report, run: &Invocation) -> Value {
    let Dimension(name, value) = dimension.into();
    let t = &report.totals;
    let counts = [
        Count::Made("RoutesCreated", t.created),
        Count::Made("RoutesReplaced", t.replaced),
        Count::Made("RoutesDeleted", t.deleted),
        Count::Seen("RouteChangesFailed", t.failed),
        Count::Seen("TablesFailed", t.tables_failed),
        Count::Seen("ManagedRoutes", report.managed_routes),
        Count::Seen("ChangesWithheld", t.withheld),
    ];
    job_record(namespace, "routes", vec![(name, value), ("VpcId", report.vpc_id.clone())], report, run, &counts)
}

#[cfg(test)]
mod emf_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_record_declares_every_metric_it_carries() {
        let mut report = Report::new(vec![], "vpc-0123456789abcdef0", false);
        report.managed_routes = 4;
        report.tables = vec![TableReport::new("rtb-1")];
        report.totals = Totals {
            created: 3,
            replaced: 1,
            deleted: 2,
            failed: 1,
            tables_failed: 1,
            withheld: 2,
            ..Totals::default()
        };
        let record = emf_record(
            "KubeRtsync",
            "k8s.example.com",
            &report,
            &Invocation {
                throttled: 5,
                events: crate::shared::changes::Published { events: 6, failed: 0 },
                duration: std::time::Duration::from_millis(1234),
            },
        );
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "KubeRtsync");
        assert_eq!(directive["Dimensions"], json!([["ClusterName", "VpcId"], ["Job", "ClusterName", "VpcId"]]));
        assert_eq!(record["Job"], "routes");
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
            ("ChangesWithheld", 2),
            ("WritesFailed", 1),
            ("EventsPublished", 6),
            ("EventsFailed", 0),
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
        let record = emf_record("X", "c", &report, &Invocation::default());
        assert_eq!(record["RoutesCreated"], 0);
        assert_eq!(record["DryRun"], true);
    }
}

#[cfg(test)]
mod dimension_tests {
    use super::*;

    #[test]
    fn without_a_cluster_name_the_dimension_says_it_holds_the_source_table() {
        let report = Report::new(vec![], "vpc-0123456789abcdef0", false);
        let record =
            emf_record("KubeRtsync", Dimension::source_table("rtb-0123456789abcdef0"), &report, &Invocation::default());
        assert_eq!(
            record["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["SourceRouteTableId", "VpcId"], ["Job", "SourceRouteTableId", "VpcId"]])
        );
        assert_eq!(record["SourceRouteTableId"], "rtb-0123456789abcdef0");
        assert!(record.get("ClusterName").is_none());
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::aws::ec2::model::{Destination, Target};
    use crate::jobs::routes::plan::Guard;

    fn created(n: usize) -> Vec<CreatedRoute> {
        (0..n)
            .map(|i| CreatedRoute {
                destination: Destination::Cidr(format!("100.{}.{}.0/24", 96 + i / 256, i % 256).parse().unwrap()),
                target: Target::Instance(format!("i-{i:017x}").into()),
            })
            .collect()
    }

    fn withheld(n: usize) -> Vec<WithheldAction> {
        created(n)
            .into_iter()
            .map(|c| WithheldAction {
                action: RouteAction::Create { destination: c.destination, target: c.target },
                reason: Guard::RouteTableLimit,
            })
            .collect()
    }

    fn report() -> Report {
        let mut report = Report::new(vec![], "vpc-0123456789abcdef0", false);
        let mut a = TableReport::new("rtb-a");
        a.created = created(400);
        a.withheld = withheld(3);
        let mut b = TableReport::new("rtb-b");
        b.created = created(300);
        b.withheld = withheld(2);
        report.tables = vec![a, b];
        report.finish()
    }

    #[test]
    fn a_bounded_report_keeps_the_most_telling_entries_and_exact_totals() {
        let full = report();
        let bounded = full.clone().bounded(100);
        // Withheld first in every table (3 + 2), then creates in table order.
        let lens: Vec<(usize, usize, usize)> =
            bounded.tables.iter().map(|t| (t.withheld.len(), t.created.len(), t.omitted)).collect();
        assert_eq!(lens, vec![(3, 95, 305), (2, 0, 300)]);
        assert_eq!(bounded.totals, full.totals);
        assert_eq!((bounded.totals.created, bounded.totals.withheld), (700, 5));
        assert_eq!(bounded.outcome, full.outcome);
        let json = serde_json::to_value(&bounded).unwrap();
        assert_eq!(json["tables"][1]["omitted"], 300);
        assert_eq!(json["tables"][1]["created"], serde_json::json!([]));
    }

    #[test]
    fn a_small_report_is_left_whole_and_says_nothing_of_omissions() {
        let full = report();
        let bounded = full.clone().bounded(LISTED_ENTRIES + 205);
        assert_eq!(bounded, full);
        let json = serde_json::to_value(&bounded).unwrap();
        assert!(json["tables"][0].get("omitted").is_none(), "{json}");
    }

    #[test]
    fn the_largest_resync_fits_lambda_s_limits_once_bounded() {
        // EC2's maxima: 199 targets, each missing 999 routes.
        let mut report = Report::new(vec![], "vpc-0123456789abcdef0", false);
        report.tables = (0..199)
            .map(|n| TableReport { created: created(999), ..TableReport::new(&format!("rtb-{n:017x}")) })
            .collect();
        let report = report.finish();
        let full = serde_json::to_string(&report).unwrap().len();
        let bounded = serde_json::to_string(&report.bounded(LISTED_ENTRIES)).unwrap().len();
        assert!(full > 6 << 20, "{full} bytes: the case is not large enough to tell");
        // CloudWatch Logs takes events of up to 256 KB.
        assert!(bounded < 256 << 10, "{bounded} bytes");
    }
}
