//! The targets report: the plan per group, what each call did, the EMF record.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::plan::TargetsPlan;
use crate::shared::event::Trigger;
use crate::shared::metrics::{Count, Invocation, job_record};
pub use crate::shared::report::{Outcome, WriteStatus};
use crate::shared::report::{count_writes, outcome_of, render_incomplete, render_unmade};

/// One `RegisterTargets` or `DeregisterTargets` batch and what became of it.
pub use super::apply::CallResult;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub groups: usize,
    pub groups_failed: usize,
    pub nodes: usize,
    pub registered: usize,
    pub deregistered: usize,
    pub foreign: usize,
    pub failed: usize,
    pub not_started: usize,
    /// Deregistrations the guard held back (the selector matches no instance).
    pub withheld: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
    pub vpc_id: String,
    pub dry_run: bool,
    pub plan: Option<TargetsPlan>,
    pub calls: Vec<CallResult>,
    pub totals: Totals,
}

impl Report {
    pub fn new(triggers: Vec<Trigger>, vpc_id: &str, dry_run: bool) -> Self {
        Report {
            outcome: Outcome::NothingToDo,
            triggers,
            vpc_id: vpc_id.to_owned(),
            dry_run,
            plan: None,
            calls: Vec::new(),
            totals: Totals::default(),
        }
    }

    pub fn finish(mut self) -> Self {
        let made = |action: &str| {
            let calls = self.calls.iter().filter(|c| c.detail.action == action && c.status.is_made());
            calls.map(|c| c.detail.targets.len()).sum::<usize>()
        };
        let mut failed_groups: Vec<&str> =
            self.calls.iter().filter(|c| !c.status.is_made()).map(|c| c.resource.as_str()).collect();
        failed_groups.sort();
        failed_groups.dedup();
        let (_, failed, not_started) = count_writes(self.calls.iter().map(|c| &c.status));
        let plan = self.plan.as_ref();
        self.totals = Totals {
            groups: plan.map_or(0, |p| p.groups.len()),
            groups_failed: failed_groups.len(),
            nodes: plan.map_or(0, |p| p.nodes),
            registered: made("register"),
            deregistered: made("deregister"),
            foreign: plan.map_or(0, TargetsPlan::foreign),
            failed,
            not_started,
            withheld: plan.map_or(0, TargetsPlan::withheld),
        };
        let t = &self.totals;
        self.outcome = outcome_of(failed + not_started > 0, t.registered + t.deregistered, self.dry_run);
        self
    }
}

impl crate::shared::report::JobReport for Report {
    fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn changes(&self) -> usize {
        self.totals.registered + self.totals.deregistered
    }

    crate::shared::report::write_counts!(calls);

    /// One per target registered or deregistered (a batch's every target).
    fn changes_made(&self, arns: &crate::shared::changes::Arns) -> Vec<crate::shared::changes::Change> {
        use crate::shared::changes::Change;
        let done = self.calls.iter().filter(|c| c.status == WriteStatus::Done);
        done.flat_map(|call| {
            let register = call.detail.action == "register";
            call.detail.targets.iter().map(move |t| {
                let target = match t.port {
                    Some(port) => format!("{}:{port}", t.instance_id),
                    None => t.instance_id.clone(),
                };
                let (sign, from, to) = if register {
                    ('+', "not registered", "registered")
                } else {
                    ('-', "registered", "not registered")
                };
                let mut resources = vec![call.resource.clone()];
                resources.extend(arns.ec2("instance", &t.instance_id));
                Change {
                    resource: call.resource.clone(),
                    arns: resources,
                    change: format!("{sign} {target} ({})", t.reason),
                    from: Some(format!("{target} {from}")),
                    to: Some(format!("{target} {to}")),
                    reason: t.reason.to_string(),
                }
            })
        })
        .collect()
    }

    fn render(&self, _colour: bool) -> String {
        let t = &self.totals;
        let mut out = format!(
            "Target groups in {}: {} running node{}\n\n",
            self.vpc_id,
            t.nodes,
            if t.nodes == 1 { "" } else { "s" }
        );
        if let Some(plan) = &self.plan {
            let _ = writeln!(out, "{plan}");
        }
        render_unmade(&mut out, self.calls.iter().map(|c| (c.resource.as_str(), c.change.as_str(), &c.status)));
        let verb = if self.dry_run { "Plan" } else { "Applied" };
        let _ = writeln!(
            out,
            "\n{verb}: {} registered, {} deregistered, in {} group{}; {} foreign target{} left alone.",
            t.registered,
            t.deregistered,
            t.groups,
            if t.groups == 1 { "" } else { "s" },
            t.foreign,
            if t.foreign == 1 { "" } else { "s" },
        );
        if t.withheld > 0 {
            let _ = writeln!(
                out,
                "Withheld: {} deregistration{}: the node selector matches no instance of the VPC.",
                t.withheld,
                if t.withheld == 1 { "" } else { "s" }
            );
        }
        render_incomplete(&mut out, "calls", t.failed, t.not_started);
        out
    }
}

/// The EMF record of one invocation. Dimension: the VPC.
pub fn emf_record(namespace: &str, report: &Report, run: &Invocation) -> Value {
    let t = &report.totals;
    let counts = [
        Count::Made("TargetsRegistered", t.registered),
        Count::Made("TargetsDeregistered", t.deregistered),
        Count::Seen("GroupsFailed", t.groups_failed),
        Count::Seen("Nodes", t.nodes),
        Count::Seen("ChangesWithheld", t.withheld),
    ];
    job_record(namespace, "targets", vec![("VpcId", report.vpc_id.clone())], report, run, &counts)
}
