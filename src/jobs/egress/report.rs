//! The egress report: the plan's decisions per table and NAT, what was
//! written, what failed, and the EMF record.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::plan::EgressPlan;
use crate::shared::event::Trigger;
use crate::shared::metrics::{Count, Invocation, job_record};
pub use crate::shared::report::{Outcome, WriteResult, WriteStatus};
use crate::shared::report::{count_writes, outcome_of, render_incomplete, render_unmade};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub tables: usize,
    pub tables_failed_over: usize,
    pub tables_failed_back: usize,
    pub tables_without_healthy_nat: usize,
    pub tables_left_alone: usize,
    pub healthy_nats: usize,
    pub unhealthy_nats: usize,
    pub writes: usize,
    pub failed: usize,
    pub not_started: usize,
}

/// The invocation's report: the JSON response and the last log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
    pub vpc_id: String,
    pub router_id: String,
    pub dry_run: bool,
    pub plan: EgressPlan,
    pub writes: Vec<WriteResult>,
    pub totals: Totals,
}

impl Report {
    pub fn new(triggers: Vec<Trigger>, vpc_id: &str, router_id: &str, dry_run: bool) -> Self {
        Report {
            outcome: Outcome::NothingToDo,
            triggers,
            vpc_id: vpc_id.to_owned(),
            router_id: router_id.to_owned(),
            dry_run,
            plan: EgressPlan::default(),
            writes: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Fills in the totals and the outcome. Tables without a healthy NAT
    /// are reported and counted, but do not make the invocation fail: no
    /// retry can give them one, and the schedule comes back within a minute.
    pub fn finish(mut self) -> Self {
        let p = &self.plan;
        let (writes, failed, not_started) = count_writes(self.writes.iter().map(|w| &w.status));
        self.totals = Totals {
            tables: p.tables.len(),
            tables_failed_over: p.failed_over(),
            tables_failed_back: p.failed_back(),
            tables_without_healthy_nat: p.without_healthy_nat(),
            tables_left_alone: p.left_alone(),
            healthy_nats: p.healthy_nats(),
            unhealthy_nats: p.unhealthy_nats(),
            writes,
            failed,
            not_started,
        };
        self.outcome = outcome_of(failed + not_started > 0, writes, self.dry_run);
        self
    }
}

impl crate::shared::report::JobReport for Report {
    fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn changes(&self) -> usize {
        self.totals.writes
    }

    crate::shared::report::write_counts!(writes);

    /// One per default route written and per source/destination check turned
    /// off. The failback clocks are this job's bookkeeping on the table, not
    /// changes of the network: they are not published.
    fn changes_made(&self, arns: &crate::shared::changes::Arns) -> Vec<crate::shared::changes::Change> {
        use crate::shared::changes::Change;
        let done = self.writes.iter().filter(|w| w.status == WriteStatus::Done && !super::apply::is_clock(&w.change));
        done.filter_map(|w| {
            if self.plan.source_dest_fixes.contains(&w.resource) {
                return Some(Change {
                    resource: w.resource.clone(),
                    arns: arns.ec2("instance", &w.resource).into_iter().collect(),
                    change: format!("~ {}: source/destination check off", w.resource),
                    from: Some("source/destination check on".into()),
                    to: Some("source/destination check off".into()),
                    reason: "a NAT instance cannot forward with the check on".into(),
                });
            }
            let table = self.plan.tables.iter().find(|t| t.table_id == w.resource && t.route_change.is_some())?;
            Some(Change {
                resource: table.table_id.clone(),
                arns: arns.ec2("route-table", &table.table_id).into_iter().collect(),
                change: table.to_string(),
                from: table.current.as_ref().map(|c| c.nat.clone().unwrap_or_else(|| c.target.clone())),
                to: table.chosen.as_ref().map(|c| c.nat.clone()),
                reason: table.reason.detailed(),
            })
        })
        .collect()
    }

    fn render(&self, _colour: bool) -> String {
        let mut out =
            format!("Egress {} in {}: {} enrolled tables\n\n", self.router_id, self.vpc_id, self.totals.tables);
        out.push_str(&self.plan.to_string());
        if !out.ends_with('\n') {
            out.push('\n');
        }
        render_unmade(&mut out, self.writes.iter().map(|w| (w.resource.as_str(), w.change.as_str(), &w.status)));
        let t = &self.totals;
        let verb = if self.dry_run { "Plan" } else { "Applied" };
        let _ = writeln!(
            out,
            "\n{verb}: {} write{}; {} failed over, {} failed back, {} without a healthy NAT, {} left alone; NATs: {} healthy, {} unhealthy.",
            t.writes,
            if t.writes == 1 { "" } else { "s" },
            t.tables_failed_over,
            t.tables_failed_back,
            t.tables_without_healthy_nat,
            t.tables_left_alone,
            t.healthy_nats,
            t.unhealthy_nats,
        );
        render_incomplete(&mut out, "writes", t.failed, t.not_started);
        out
    }
}

/// The EMF record of one invocation. Dimensions: the VPC and the router id.
pub fn emf_record(namespace: &str, report: &Report, run: &Invocation) -> Value {
    let t = &report.totals;
    let counts = [
        Count::Made("TablesFailedOver", t.tables_failed_over),
        Count::Made("TablesFailedBack", t.tables_failed_back),
        Count::Seen("HealthyNats", t.healthy_nats),
        Count::Seen("UnhealthyNats", t.unhealthy_nats),
        Count::Seen("TablesWithoutHealthyNat", t.tables_without_healthy_nat),
        Count::Seen("TablesLeftAlone", t.tables_left_alone),
        Count::Seen("EgressWritesFailed", t.failed + t.not_started),
    ];
    let dimensions = vec![("VpcId", report.vpc_id.clone()), ("RouterId", report.router_id.clone())];
    job_record(namespace, "egress", dimensions, report, run, &counts)
}
