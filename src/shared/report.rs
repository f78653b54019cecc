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

    /// `DRY_RUN`: the changes were planned, not made.
    fn dry_run(&self) -> bool;

    /// Writes that failed or were not started (the `WritesFailed` metric).
    fn writes_failed(&self) -> usize;

    /// The report as text for people (the command line's default output).
    fn render(&self, colour: bool) -> String;

    /// One entry per change made (never a planned, failed or withheld one):
    /// what the change events publish.
    fn changes_made(&self, arns: &crate::shared::changes::Arns) -> Vec<crate::shared::changes::Change>;

    /// Whether another invocation can finish what this one left: a failed
    /// write a retry can help, or, with no failure at all, writes that were
    /// not started (the deadline). Not when every failure is a refusal to
    /// fix first (the role, a parameter).
    fn retry_can_finish(&self) -> bool;

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

    /// Whether invoking again, unchanged, can end otherwise.
    fn retryable(&self) -> bool;
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

/// The [`JobReport`] items that every report with a `dry_run` flag,
/// `totals.failed` and `totals.not_started`, and a list of write results
/// (`$list`, each with a `status`) answers alike: `dry_run`,
/// `writes_failed` and `retry_can_finish`.
macro_rules! write_counts {
    ($list:ident) => {
        fn dry_run(&self) -> bool {
            self.dry_run
        }

        fn writes_failed(&self) -> usize {
            self.totals.failed + self.totals.not_started
        }

        fn retry_can_finish(&self) -> bool {
            crate::shared::report::retry_can_finish(self.$list.iter().map(|w| &w.status))
        }
    };
}
pub(crate) use write_counts;

/// [`JobReport::retry_can_finish`] over a report's write statuses.
pub fn retry_can_finish<'a>(statuses: impl IntoIterator<Item = &'a WriteStatus> + Clone) -> bool {
    let failed = |s: &&WriteStatus| matches!(s, WriteStatus::Failed { .. });
    let retryable = statuses.clone().into_iter().any(|s| match s {
        WriteStatus::Failed { kind, code, .. } => crate::aws::error::retry_can_help(*kind, code.as_deref()),
        _ => false,
    });
    let any_failed = statuses.clone().into_iter().any(|s| failed(&s));
    let not_started = statuses.into_iter().any(|s| matches!(s, WriteStatus::NotStarted { .. }));
    retryable || (!any_failed && not_started)
}

/// One write (or batch of writes) on one resource, and what became of it;
/// `detail` is what a job keeps besides (the targets of a batch), none by
/// default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WriteResult<D = ()> {
    /// The resource written (a route table, an instance, an address, ...).
    pub resource: String,
    /// What the write does, for people.
    pub change: String,
    #[serde(flatten)]
    pub status: WriteStatus,
    #[serde(flatten)]
    pub detail: D,
}

impl<D> WriteResult<D> {
    /// The row of one step of a phase.
    pub fn of<A: crate::shared::apply::RowDetail<D>>(
        step: &crate::shared::apply::Step<A>,
        status: WriteStatus,
    ) -> Self {
        let detail = step.action.row_detail();
        WriteResult { resource: step.resource.clone(), change: step.change.clone(), status, detail }
    }
}

impl WriteStatus {
    pub fn is_made(&self) -> bool {
        matches!(self, WriteStatus::Done | WriteStatus::Planned)
    }
}

/// How writes ended: made (or planned), failed, not started.
pub fn count_writes<'a>(statuses: impl IntoIterator<Item = &'a WriteStatus>) -> (usize, usize, usize) {
    statuses.into_iter().fold((0, 0, 0), |(made, failed, not_started), s| match s {
        WriteStatus::Done | WriteStatus::Planned => (made + 1, failed, not_started),
        WriteStatus::Failed { .. } => (made, failed + 1, not_started),
        WriteStatus::NotStarted { .. } => (made, failed, not_started + 1),
    })
}

/// The outcome of an invocation that reconciled: incomplete when anything
/// failed or was not started (or `unfinished` says so), else by whether
/// anything was (or would be) changed.
pub fn outcome_of(unfinished: bool, changes: usize, dry_run: bool) -> Outcome {
    if unfinished {
        Outcome::Incomplete
    } else if changes == 0 {
        Outcome::InSync
    } else if dry_run {
        Outcome::DryRun
    } else {
        Outcome::Synced
    }
}

/// One line per write that was not made: `! <resource> <change>: failed:
/// <code>: <message> (<hint>)`.
pub fn render_unmade<'a>(out: &mut String, writes: impl IntoIterator<Item = (&'a str, &'a str, &'a WriteStatus)>) {
    use std::fmt::Write as _;
    for (resource, change, status) in writes {
        let why = match status {
            WriteStatus::Failed { code, message, hint, .. } => {
                format!("failed: {}: {message} ({hint})", code.as_deref().unwrap_or("-"))
            }
            WriteStatus::NotStarted { reason } => format!("not started: {reason}"),
            WriteStatus::Done | WriteStatus::Planned => continue,
        };
        let _ = writeln!(out, "! {resource} {change}: {why}");
    }
}

/// The closing line of a report whose writes did not all go through.
pub fn render_incomplete(out: &mut String, what: &str, failed: usize, not_started: usize) {
    use std::fmt::Write as _;
    if failed + not_started > 0 {
        let _ = writeln!(out, "Incomplete: {failed} {what} failed, {not_started} not started.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: &str) -> WriteStatus {
        WriteStatus::failed(&AwsError::service("CreateRoute", code, "m"))
    }

    #[test]
    fn a_row_is_flat_json_with_its_detail_beside_the_status() {
        let step = crate::shared::apply::Step::new("rtb-1", "+ 10.0.1.0/24", ());
        let row: WriteResult = WriteResult::of(&step, WriteStatus::Done);
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json, serde_json::json!({"resource": "rtb-1", "change": "+ 10.0.1.0/24", "status": "done"}));

        #[derive(Clone, Serialize)]
        struct Detail {
            targets: Vec<&'static str>,
        }
        impl crate::shared::apply::RowDetail<Detail> for Detail {
            fn row_detail(&self) -> Detail {
                self.clone()
            }
        }
        let step = crate::shared::apply::Step::new("tg", "register of 1 target(s)", Detail { targets: vec!["i-1"] });
        let row: WriteResult<Detail> = WriteResult::of(&step, WriteStatus::NotStarted { reason: "r".into() });
        let json = serde_json::to_value(&row).unwrap();
        let expected = serde_json::json!({
            "resource": "tg", "change": "register of 1 target(s)", "status": "not_started", "reason": "r", "targets": ["i-1"]
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn another_invocation_can_finish_a_passing_failure_or_a_cut_short_apply_never_a_refusal() {
        let not_started = || WriteStatus::NotStarted { reason: "the deadline".into() };
        let cases: [(Vec<WriteStatus>, bool); 7] = [
            (vec![failed("RequestLimitExceeded")], true),
            (vec![failed("UnauthorizedOperation")], false),
            (vec![failed("UnauthorizedOperation"), not_started()], false),
            (vec![failed("UnauthorizedOperation"), failed("Throttling")], true),
            (vec![WriteStatus::Done, not_started()], true),
            (vec![WriteStatus::Done, WriteStatus::Planned], false),
            (vec![], false),
        ];
        for (statuses, expected) in cases {
            assert_eq!(retry_can_finish(statuses.iter()), expected, "{statuses:?}");
        }
    }
}
