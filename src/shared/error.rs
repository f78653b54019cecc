//! The one error type of every job's invocation: the failures all jobs
//! share (configuration, event, the observe round trip, a reconcile that
//! failed part way), and a job's own problems ([`Problem`]), with one
//! stable kind for Lambda's `errorType` and one answer to "can a retry
//! help?".

use crate::aws::error::AwsError;
use crate::shared::config::ConfigError;
use crate::shared::event::EventError;
use crate::shared::report::JobReport;

/// A job's own reasons to stop, and what the shared error needs of them.
pub trait Problem: std::error::Error + Send + Sync + 'static {
    /// The job's report.
    type Report: JobReport + std::fmt::Debug + Send + Sync + 'static;

    /// What the job reads before it plans, as "could not read {READS},
    /// nothing changed" says it.
    const READS: &'static str;

    /// A stable name for the problem, used as Lambda's `errorType`.
    fn kind(&self) -> &'static str;

    /// The report, when the problem came after writes.
    fn report(&self) -> Option<&Self::Report> {
        None
    }

    /// Whether invoking again, unchanged, can end otherwise.
    fn retryable(&self) -> bool;

    /// The message of a reconcile that failed part way (its report).
    fn incomplete(report: &Self::Report) -> String;
}

/// Why an invocation failed. Every variant means "nothing was written"
/// except [`Failure::Incomplete`], whose report says exactly what was, and
/// a [`Problem`] that carries a report.
#[derive(Debug, thiserror::Error)]
pub enum Failure<P: Problem> {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),

    #[error("rejected event, nothing changed: {0}")]
    Event(#[from] EventError),

    #[error("could not read {reads}, nothing changed: {0} ({hint})", reads = P::READS, hint = .0.hint())]
    Describe(#[source] AwsError),

    #[error(transparent)]
    Job(P),

    #[error("{}", P::incomplete(.0))]
    Incomplete(Box<P::Report>),
}

impl<P: Problem> Failure<P> {
    /// The report of a reconcile, or the error of one that did not
    /// complete (so that Lambda retries, and the report goes with it).
    pub fn unless_incomplete(report: P::Report) -> Result<P::Report, Failure<P>> {
        match report.is_complete() {
            true => Ok(report),
            false => Err(Failure::Incomplete(Box::new(report))),
        }
    }

    /// A stable name for the error, used as Lambda's `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Config(_) => "InvalidConfiguration",
            Failure::Event(_) => "InvalidEvent",
            Failure::Describe(_) => "DescribeFailed",
            Failure::Job(problem) => problem.kind(),
            Failure::Incomplete(_) => "SyncIncomplete",
        }
    }

    /// Whether invoking again, unchanged, can end otherwise: a reconcile
    /// that failed part way for a passing reason, a read the service refused
    /// for a while. Never a bad configuration or event, or a read or write
    /// the role may not make.
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Config(_) | Failure::Event(_) => false,
            Failure::Describe(err) => err.retry_can_help(),
            Failure::Job(problem) => problem.retryable(),
            Failure::Incomplete(report) => report.retry_can_finish(),
        }
    }
}

impl<P: Problem> crate::shared::report::JobError for Failure<P> {
    type Report = P::Report;

    fn kind(&self) -> &'static str {
        Failure::kind(self)
    }

    fn report(&self) -> Option<&P::Report> {
        match self {
            Failure::Incomplete(report) => Some(report),
            Failure::Job(problem) => problem.report(),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        Failure::retryable(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::aws::error::{AwsError, FailureKind};
    use crate::jobs::routes::report::Report;
    use crate::jobs::routes::{Error, Problem};
    use crate::shared::report::JobError;

    fn failed(kind: FailureKind, code: Option<&str>) -> AwsError {
        AwsError { operation: "DescribeRouteTables", kind, code: code.map(str::to_owned), message: "m".into() }
    }

    #[test]
    fn a_retry_can_help_a_passing_trouble_never_a_refusal_to_fix() {
        let cases = [
            (failed(FailureKind::Service, Some("RequestLimitExceeded")), true),
            (failed(FailureKind::Service, Some("Throttling")), true),
            (failed(FailureKind::Service, Some("InternalError")), true),
            (failed(FailureKind::Service, Some("ServiceUnavailable")), true),
            (failed(FailureKind::Service, Some("ServiceUnavailableException")), true),
            (failed(FailureKind::Service, Some("RequestTimeout")), true),
            (failed(FailureKind::Service, Some("InternalServerError")), true),
            (failed(FailureKind::Service, Some("ThrottlingException")), true),
            (failed(FailureKind::Service, None), true),
            (failed(FailureKind::Timeout, None), true),
            (failed(FailureKind::Network, None), true),
            (failed(FailureKind::Deadline, None), true),
            (failed(FailureKind::Service, Some("UnauthorizedOperation")), false),
            (failed(FailureKind::Service, Some("AccessDenied")), false),
            (failed(FailureKind::Service, Some("InvalidParameterValue")), false),
            (failed(FailureKind::Service, Some("InvalidRouteTableID.NotFound")), false),
            (failed(FailureKind::Certificate, None), false),
            (failed(FailureKind::Other, None), false),
        ];
        for (err, retryable) in cases {
            assert_eq!(err.retry_can_help(), retryable, "{err}");
            assert_eq!(Error::Describe(err.clone()).retryable(), retryable, "{err}");
        }
    }

    #[test]
    fn every_shared_failure_has_one_kind_and_one_answer_to_can_a_retry_help() {
        let config = crate::shared::config::ConfigError::new("VPC_ID", "is not set", "a VPC id");
        let event = crate::shared::event::decode(&serde_json::json!({"nope": 1})).unwrap_err();
        let source = Problem::SourceNotFound { selector: "tagged x".into(), vpc_id: "vpc-1".into() };
        let incomplete = |code: &str| {
            let mut table = crate::jobs::routes::report::TableReport::new("rtb-1");
            let action = crate::jobs::routes::plan::RouteAction::Delete {
                destination: crate::aws::ec2::model::Destination::Cidr("100.96.1.0/24".parse().unwrap()),
                target: crate::aws::ec2::model::Target::Instance("i-1".into()),
            };
            let err = AwsError::service("DeleteRoute", code, "m");
            table.failures.push(crate::jobs::routes::report::Failure::new(action, &err));
            let mut report = Report::new(vec![], "vpc-1", false);
            report.tables = vec![table];
            Box::new(report.finish())
        };
        let cases: [(Error, &str, bool); 6] = [
            (Error::Config(config), "InvalidConfiguration", false),
            (Error::Event(event), "InvalidEvent", false),
            (Error::Describe(failed(FailureKind::Timeout, None)), "DescribeFailed", true),
            (Error::Job(source), "SourceNotFound", false),
            (Error::Incomplete(incomplete("RequestLimitExceeded")), "SyncIncomplete", true),
            (Error::Incomplete(incomplete("UnauthorizedOperation")), "SyncIncomplete", false),
        ];
        for (err, kind, retryable) in cases {
            assert_eq!((JobError::kind(&err), JobError::retryable(&err)), (kind, retryable), "{err}");
            assert_eq!(JobError::report(&err).is_some(), kind == "SyncIncomplete", "{err}");
        }
    }

    #[test]
    fn the_describe_message_names_what_the_job_reads() {
        let err = Error::Describe(failed(FailureKind::Timeout, None));
        let text = err.to_string();
        assert!(
            text.starts_with("could not read the route tables, nothing changed: DescribeRouteTables failed"),
            "{text}"
        );
    }
}
