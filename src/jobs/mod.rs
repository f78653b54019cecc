//! The jobs, one folder each, all of the same shape: configuration,
//! observe, a pure plan, apply through the shared engine, report.
//!
//! [`JobName`] is the list of jobs this build has; the function's handler
//! name (`_HANDLER`) picks one. Each job implements the shared
//! [`crate::shared::job::Job`] trait, which the Lambda loop and the command
//! line run.

pub mod egress;
pub mod eip;
pub mod routes;
pub mod targets;

use crate::shared::config::{ConfigError, HANDLER};

/// A job this build has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobName {
    /// Mirrors the cluster's kubenet pod routes into every private route table.
    Routes,
    /// Keeps each private route table's default route on a healthy NAT.
    Egress,
    /// Keeps hand-made NLB target groups holding exactly the running nodes.
    Targets,
    /// Gives each selected node an Elastic IP, a DNS name and a lease record.
    Eip,
}

impl JobName {
    /// Every job, in the order the documentation lists them.
    pub const ALL: [JobName; 4] = [JobName::Routes, JobName::Egress, JobName::Targets, JobName::Eip];

    /// The job's name: its handler name, its command, its policy file.
    pub fn name(self) -> &'static str {
        match self {
            JobName::Routes => "routes",
            JobName::Egress => "egress",
            JobName::Targets => "targets",
            JobName::Eip => "eip",
        }
    }

    /// The job a Lambda handler name selects. `bootstrap` (the name SAM and
    /// `cargo lambda` give a custom runtime) and no name at all are the
    /// routes job, as they were before kube-rtsync had several.
    pub fn from_handler(handler: Option<&str>) -> Result<JobName, ConfigError> {
        let handler = handler.map(str::trim).unwrap_or_default();
        if handler.is_empty() || handler == "bootstrap" {
            return Ok(JobName::Routes);
        }
        JobName::ALL.into_iter().find(|job| job.name() == handler).ok_or_else(|| {
            let names: Vec<&str> = JobName::ALL.iter().map(|j| j.name()).collect();
            ConfigError::new(
                HANDLER,
                format!("{:?} is not a job of this build", crate::shared::config::excerpt(handler)),
                leak_list(&names),
            )
        })
    }
}

/// The `expected` text of a handler error: the jobs this build has. Made
/// once, at init, so it can be a `&'static str` like every other form.
fn leak_list(names: &[&str]) -> &'static str {
    Box::leak(format!("one of {} (or bootstrap, or unset, for routes)", names.join(", ")).into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_name_picks_the_job() {
        let cases = [
            (None, JobName::Routes),
            (Some(""), JobName::Routes),
            (Some("bootstrap"), JobName::Routes),
            (Some("routes"), JobName::Routes),
        ];
        for (handler, job) in cases {
            assert_eq!(JobName::from_handler(handler).unwrap(), job, "{handler:?}");
        }
    }

    #[test]
    fn an_unknown_handler_names_the_variable_and_the_jobs() {
        let err = JobName::from_handler(Some("nope")).unwrap_err();
        assert_eq!(err.variable, "_HANDLER");
        let text = err.to_string();
        assert!(text.contains("\"nope\"") && text.contains("routes"), "{text}");
    }
}
