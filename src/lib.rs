//! kube-rtsync mirrors a Kubernetes cluster's kubenet pod routes from the
//! cluster's VPC route table into every private route table of the VPC.
//!
//! The crate is split so that the logic is pure and testable:
//! [`config`] and [`event`] decode inputs, [`plan`] computes the changes,
//! [`ec2`] is the only door to AWS, and [`sync`] ties them together.

pub mod cli;
pub mod config;
pub mod ec2;
pub mod event;
pub mod fake;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod report;
pub mod sdk;
pub mod sync;

use crate::report::Report;

/// Why an invocation failed. Every variant means "nothing was written" except
/// [`Error::Incomplete`], whose report says exactly what was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),

    #[error("rejected event, nothing changed: {0}")]
    Event(#[from] event::EventError),

    #[error("could not read the route tables, nothing changed: {0} ({hint})", hint = .0.hint())]
    Describe(#[source] ec2::Ec2Error),

    #[error(
        "no source route table, nothing changed: no table in {vpc_id} is {selector}; check KUBE_CLUSTER_NAME or SOURCE_ROUTE_TABLE_ID and the table's tags"
    )]
    SourceNotFound { selector: String, vpc_id: String },

    #[error(
        "ambiguous source route table, nothing changed: {} tables in {vpc_id} are {selector} ({}); set SOURCE_ROUTE_TABLE_ID to the cluster's table",
        .ids.len(), .ids.join(", ")
    )]
    AmbiguousSource { selector: String, vpc_id: String, ids: Vec<String> },

    #[error("{}", incomplete_message(.0))]
    Incomplete(Box<Report>),
}

impl Error {
    /// A stable name for the error, used as Lambda's `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "InvalidConfiguration",
            Error::Event(_) => "InvalidEvent",
            Error::Describe(_) => "DescribeFailed",
            Error::SourceNotFound { .. } => "SourceNotFound",
            Error::AmbiguousSource { .. } => "AmbiguousSource",
            Error::Incomplete(_) => "SyncIncomplete",
        }
    }
}

fn incomplete_message(report: &Report) -> String {
    let t = &report.totals;
    let tables: Vec<&str> =
        report.tables.iter().filter(|t| !t.is_complete()).map(|t| t.route_table_id.as_str()).collect();
    let codes: std::collections::BTreeSet<&str> = report
        .tables
        .iter()
        .flat_map(|t| t.failures.iter().map(|f| f.code.as_deref().unwrap_or(f.operation)))
        .collect();
    let codes: Vec<&str> = codes.into_iter().collect();
    format!(
        "sync incomplete in {} of {} tables ({}): {} failed{}, {} not started, {} withheld by guards; {} created, {} replaced, {} deleted; Lambda retries the invocation",
        t.tables_failed,
        t.tables,
        tables.join(", "),
        t.failed,
        if codes.is_empty() { String::new() } else { format!(" ({})", codes.join(", ")) },
        t.not_started,
        t.withheld,
        t.created,
        t.replaced,
        t.deleted,
    )
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        lambda_runtime::Diagnostic { error_type: err.kind().to_owned(), error_message: err.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
