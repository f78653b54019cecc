//! The eip report: the plan, each write and what became of it, the EMF record.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::plan::EipPlan;
use crate::shared::event::Trigger;
use crate::shared::metrics::{Count, Invocation, job_record};
pub use crate::shared::report::{Outcome, WriteResult, WriteStatus};
use crate::shared::report::{count_writes, outcome_of, render_incomplete, render_unmade};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub bound: usize,
    pub released: usize,
    pub repaired: usize,
    pub kept: usize,
    pub nodes_without_address: usize,
    /// Nodes not bound because an Elastic IP from outside the pool is on their
    /// primary private address (rule 3).
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
    pub writes: Vec<Row>,
    pub totals: Totals,
    /// The hosted zone of the records (for the change events' ARNs).
    #[serde(skip)]
    pub dns_zone_id: Option<String>,
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
            dns_zone_id: None,
        }
    }

    /// A bind or release counts once all of its writes are done; an empty
    /// pool leaves the invocation incomplete, so that Lambda retries it.
    pub fn finish(mut self) -> Self {
        let ok = |resource: &str| writes_of(&self.writes, resource).all(|w| w.status.is_made());
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

/// The writes of one address (or record name): its own, and the record
/// batches that carry it.
fn writes_of<'a>(writes: &'a [Row], resource: &'a str) -> impl Iterator<Item = &'a Row> {
    writes.iter().filter(move |w| w.resource == resource || w.detail.addresses.iter().any(|r| r == resource))
}

/// One write of the eip job and what became of it.
pub type Row = WriteResult<super::apply::Carried>;

impl Report {
    fn zone_arn(&self, arns: &crate::shared::changes::Arns) -> Vec<String> {
        self.dns_zone_id.iter().map(|zone| arns.hosted_zone(zone)).collect()
    }
}

impl crate::shared::report::JobReport for Report {
    fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn changes(&self) -> usize {
        self.plan.changes()
    }

    crate::shared::report::write_counts!(writes);

    /// One per bind, release, repair and deleted record whose writes all
    /// went through.
    fn changes_made(&self, arns: &crate::shared::changes::Arns) -> Vec<crate::shared::changes::Change> {
        use crate::shared::changes::Change;
        let made = |resource: &str| {
            let mut writes = writes_of(&self.writes, resource).peekable();
            writes.peek().is_some() && writes.all(|w| w.status == WriteStatus::Done)
        };
        let resources = |allocation_id: &str, instance_id: Option<&str>| -> Vec<String> {
            let mut out: Vec<String> = arns.ec2("elastic-ip", allocation_id).into_iter().collect();
            out.extend(instance_id.and_then(|id| arns.ec2("instance", id)));
            out
        };
        let p = &self.plan;
        let releases = p.releases.iter().filter(|r| made(&r.public_ip)).map(|r| Change {
            resource: r.public_ip.clone(),
            arns: resources(&r.allocation_id, r.instance_id.as_deref()),
            change: r.line(),
            from: r.instance_id.clone(),
            to: None,
            reason: r.reason.to_string(),
        });
        let binds = p.binds.iter().filter(|b| made(&b.public_ip)).map(|b| Change {
            resource: b.public_ip.clone(),
            arns: resources(&b.allocation_id, Some(&b.instance_id)),
            change: b.line(),
            from: None,
            to: Some(b.instance_id.clone()),
            reason: if b.resumed { "completes an earlier claim" } else { "running node without a pool address" }.into(),
        });
        let repairs = p.repairs.iter().filter(|r| made(&r.public_ip)).map(|r| match &r.leaving {
            Some(why) => Change {
                resource: r.public_ip.clone(),
                arns: resources(&r.allocation_id, Some(&r.instance_id))
                    .into_iter()
                    .chain(self.zone_arn(arns))
                    .collect(),
                change: r.line(),
                from: r.record.as_ref().map(|c| c.record().name.clone()),
                to: None,
                reason: format!("{} is {why}; it keeps its address until it stops", r.instance_id),
            },
            None => Change {
                resource: r.public_ip.clone(),
                arns: resources(&r.allocation_id, Some(&r.instance_id)),
                change: r.line(),
                from: Some(r.instance_id.clone()),
                to: Some(r.instance_id.clone()),
                reason: format!("the node keeps its address; its {} did not say so", r.parts()),
            },
        });
        let records = p.orphan_records.iter().filter(|r| made(&r.name)).map(|r| Change {
            resource: r.name.clone(),
            arns: self.zone_arn(arns),
            change: super::plan::orphan_record_line(r),
            from: Some(r.values.join(",")),
            to: None,
            reason: "the address is no longer in the pool".into(),
        });
        releases.chain(binds).chain(repairs).chain(records).collect()
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
pub fn emf_record(namespace: &str, report: &Report, run: &Invocation) -> Value {
    let t = &report.totals;
    let counts = [
        Count::Made("AddressesBound", t.bound),
        Count::Made("AddressesReleased", t.released),
        Count::Seen("NodesWithoutAddress", t.nodes_without_address),
        Count::Seen("PoolFree", t.pool_free),
        Count::Seen("ChangesWithheld", t.withheld),
        Count::Seen("NodesLeftAlone", t.nodes_left_alone),
    ];
    job_record(namespace, "eip", vec![("VpcId", report.vpc_id.clone())], report, run, &counts)
}
