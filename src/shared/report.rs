//! The report envelope every job shares: how an invocation ended, and what
//! the Lambda wiring and the command line need of a job's report and error.

use serde::Serialize;

use crate::aws::error::{AwsError, FailureKind};

/// Why an invocation ended the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The event asked for no reconcile (a test notification).
    NothingToDo,
    /// Everything was already as it should be.
    InSync,
    /// Changes were made, all of them successfully.
    Synced,
    /// `DRY_RUN`: changes were planned and not made.
    DryRun,
    /// Some changes failed, were withheld, or were not started.
    Incomplete,
}

/// What the Lambda wiring and the command line need of a job's report.
pub trait JobReport: Serialize {
    fn outcome(&self) -> Outcome;

    /// Changes planned (dry run) or made.
    fn changes(&self) -> usize;

    /// The report as text for people (the command line's default output).
    fn render(&self, colour: bool) -> String;

    fn is_complete(&self) -> bool {
        self.outcome() != Outcome::Incomplete
    }
}

/// What the Lambda wiring and the command line need of a job's error.
pub trait JobError: std::error::Error + Send + Sync + 'static {
    type Report: JobReport;

    /// A stable name for the error, used as Lambda's `errorType`.
    fn kind(&self) -> &'static str;

    /// The report of an invocation that wrote before it failed.
    fn report(&self) -> Option<&Self::Report>;
}

/// What became of one write (or one batch of writes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WriteStatus {
    Done,
    /// `DRY_RUN`: planned, not made.
    Planned,
    Failed {
        operation: &'static str,
        kind: FailureKind,
        code: Option<String>,
        message: String,
        hint: &'static str,
    },
    NotStarted {
        reason: String,
    },
}

impl WriteStatus {
    pub fn failed(err: &AwsError) -> Self {
        WriteStatus::Failed {
            operation: err.operation,
            kind: err.kind,
            code: err.code.clone(),
            message: err.message.clone(),
            hint: err.hint(),
        }
    }
}
