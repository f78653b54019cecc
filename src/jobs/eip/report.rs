//! The eip report: the plan, each write and what became of it, the EMF record.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::plan::EipPlan;
use crate::shared::event::Trigger;
use crate::shared::metrics::{Record, Unit};
pub use crate::shared::report::{Outcome, WriteResult, WriteStatus};
use crate::shared::report::{count_writes, outcome_of, render_incomplete, render_unmade};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub bound: usize,
    pub released: usize,
    pub repaired: usize,
    pub kept: usize,
    pub nodes_without_address: usize,
    /// Nodes not bound because an Elastic IP from outside the pool is on their primary private address (rule 3).
    pub nodes_left_alone: usize,
    /// Releases the selector guard held back (rule 5a).
    pub withheld: usize,
    pub pool_free: usize,
    pub failed: usize,
    pub not_started: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
    pub vpc_id: String,
    pub dry_run: bool,
    pub plan: EipPlan,
    /// Pool addresses kube-rtsync would not reason about (held by an
    /// interface of no instance it can see).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub writes: Vec<WriteResult>,
    pub totals: Totals,
}

impl Report {
    pub fn new(triggers: Vec<Trigger>, vpc_id: &str, dry_run: bool) -> Self {
        Report {
            outcome: Outcome::NothingToDo,
            triggers,
            vpc_id: vpc_id.to_owned(),
            dry_run,
            plan: EipPlan::default(),
            warnings: Vec::new(),
            writes: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// A bind or release counts once all of its writes are done; an empty
    /// pool leaves the invocation incomplete, so that Lambda retries it.
    pub fn finish(mut self) -> Self {
        let ok = |resource: &str| self.writes.iter().filter(|w| w.resource == resource).all(|w| w.status.is_made());
        let (_, failed, not_started) = count_writes(self.writes.iter().map(|w| &w.status));
        let p = &self.plan;
        self.totals = Totals {
            bound: p.binds.iter().filter(|b| ok(&b.public_ip)).count(),
            released: p.releases.iter().filter(|r| r.association_id.is_some() && ok(&r.public_ip)).count(),
            repaired: p.repairs.iter().filter(|r| ok(&r.public_ip)).count(),
            kept: p.keeps.len(),
            nodes_without_address: p.unbound.len(),
            nodes_left_alone: p.nodes_left_alone.len(),
            withheld: p.withheld.len(),
            pool_free: p.pool_free_after,
            failed,
            not_started,
        };
        let unfinished = failed + not_started + self.totals.nodes_without_address > 0;
        self.outcome = outcome_of(unfinished, self.writes.len(), self.dry_run);
        self
    }
}

impl crate::shared::report::JobReport for Report {
    fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn changes(&self) -> usize {
        self.plan.changes()
    }

    fn render(&self, _colour: bool) -> String {
        let t = &self.totals;
        let mut out = format!("Elastic IPs in {}\n\n{}", self.vpc_id, self.plan);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        render_unmade(&mut out, self.writes.iter().map(|w| (w.resource.as_str(), w.change.as_str(), &w.status)));
        let verb = if self.dry_run { "Plan" } else { "Applied" };
        let _ = writeln!(
            out,
            "\n{verb}: {} bound, {} released, {} repaired, {} kept; {} free in the pool.",
            self.plan.binds.len(),
            self.plan.releases.len(),
            self.plan.repairs.len(),
            t.kept,
            t.pool_free,
        );
        if t.nodes_without_address > 0 {
            let _ = writeln!(out, "Pool exhausted: {} node(s) without an address.", t.nodes_without_address);
        }
        if t.withheld > 0 {
            let _ = writeln!(
                out,
                "Withheld: {} release{}: the node selector (EIP_NODE_TAGS) matches no instance of the VPC.",
                t.withheld,
                if t.withheld == 1 { "" } else { "s" }
            );
        }
        render_incomplete(&mut out, "writes", t.failed, t.not_started);
        out
    }
}

/// The EMF record of one invocation. Dimension: the VPC.
pub fn emf_record(namespace: &str, report: &Report, throttled: usize, duration: Duration) -> Value {
    let t = &report.totals;
    let made = |n: usize| if report.dry_run { 0 } else { n as u64 };
    Record::invocation(
        namespace,
        vec![("VpcId", report.vpc_id.clone())],
        "eip",
        report.outcome,
        report.dry_run,
        throttled,
        t.failed + t.not_started,
        duration,
    )
    .metric("AddressesBound", Unit::Count, made(t.bound))
    .metric("AddressesReleased", Unit::Count, made(t.released))
    .metric("NodesWithoutAddress", Unit::Count, t.nodes_without_address as u64)
    .metric("PoolFree", Unit::Count, t.pool_free as u64)
    .metric("ChangesWithheld", Unit::Count, t.withheld as u64)
    .metric("NodesLeftAlone", Unit::Count, t.nodes_left_alone as u64)
    .build()
}
