//! The routes report as text for people: one line per change, then totals.

use std::fmt::Write as _;

use super::plan::RouteAction;
use super::report::{Outcome, Report};

/// The report as a table for people: one line per change, `+` create,
/// `~` replace (old -> new target), `-` delete, then totals.
pub fn render(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    };
    let mut out = String::new();
    let planned = report.dry_run;
    let _ = writeln!(
        out,
        "Source {} in {}: {} managed route{}",
        report.source_route_table_id.as_deref().unwrap_or("-"),
        report.vpc_id,
        report.managed_routes,
        if report.managed_routes == 1 { "" } else { "s" }
    );
    for table in &report.tables {
        let name = table.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(out, "\n{}{name}", paint("1", &table.route_table_id));
        if table.changes() == 0 && table.is_complete() && table.skipped.is_empty() {
            let _ = writeln!(out, "    {}", paint("2", "in sync"));
        }
        for r in &table.deleted {
            let _ = writeln!(out, "  {} {:<20} {}", paint("31", "-"), r.destination.to_string(), r.target);
        }
        for r in &table.replaced {
            let _ = writeln!(out, "  {} {:<20} {} -> {}", paint("33", "~"), r.destination.to_string(), r.from, r.to);
        }
        for r in &table.created {
            let _ = writeln!(out, "  {} {:<20} -> {}", paint("32", "+"), r.destination.to_string(), r.target);
        }
        // Changes that did not happen: `!` failed, `?` not started or withheld.
        let mut unmade = |mark: &str, colour: &str, action: &RouteAction, what: String| {
            let (destination, verb) = (action.destination().to_string(), action.verb());
            let _ = writeln!(out, "  {} {destination:<20} {verb} {what}", paint(colour, mark));
        };
        for f in &table.failures {
            let code = f.code.as_deref().unwrap_or("-");
            unmade("!", "31", &f.action, format!("failed: {code}: {} ({})", f.message, f.hint));
        }
        for n in &table.not_started {
            unmade("?", "33", &n.action, format!("not started: {}", n.reason));
        }
        for w in &table.withheld {
            unmade("?", "33", &w.action, format!("withheld: {}", w.reason));
        }
        for s in &table.skipped {
            let _ = writeln!(out, "  {} {:<20} skipped: {}", paint("2", "."), s.destination.to_string(), s.reason);
        }
        if table.omitted > 0 {
            let _ =
                writeln!(out, "    {}", paint("2", &format!("... {} more, left out of this report", table.omitted)));
        }
    }
    for s in &report.skipped {
        let _ = writeln!(out, "\nsource route {} -> {} not mirrored: {}", s.destination, s.target, s.reason);
    }
    for w in &report.warnings {
        let _ = writeln!(out, "\nwarning: {w}");
    }
    let t = &report.totals;
    let changed = format!("{} of {} table{}", t.tables_changed, t.tables, if t.tables == 1 { "" } else { "s" });
    let _ = writeln!(out);
    let summary = match report.outcome {
        Outcome::InSync | Outcome::NothingToDo => {
            format!("No changes: {} table{} in sync.", t.tables, if t.tables == 1 { "" } else { "s" })
        }
        _ if planned => {
            format!("Plan: {} to create, {} to replace, {} to delete, in {changed}.", t.created, t.replaced, t.deleted)
        }
        _ => format!("Applied: {} created, {} replaced, {} deleted, in {changed}.", t.created, t.replaced, t.deleted),
    };
    let _ = writeln!(out, "{}", paint("1", &summary));
    if t.failed + t.not_started + t.withheld > 0 {
        let _ = writeln!(
            out,
            "{}",
            paint(
                "31",
                &format!("Incomplete: {} failed, {} not started, {} withheld.", t.failed, t.not_started, t.withheld)
            )
        );
    }
    out
}

/// A report with one change of each kind, for the tests of this module and the
/// command line's.
#[cfg(test)]
pub(crate) fn sample_report(dry_run: bool) -> Report {
    tests::report(dry_run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ec2::model::{Destination, Target};
    use crate::jobs::routes::report::TableReport;

    pub(super) fn report(dry_run: bool) -> Report {
        let mut table = TableReport::new("rtb-0a");
        table.name = Some("private_us-east-1a".into());
        let dest = |s: &str| Destination::Cidr(s.parse().unwrap());
        table.record(&RouteAction::Create {
            destination: dest("100.96.1.0/24"),
            target: Target::Instance("i-1".into()),
        });
        table.record(&RouteAction::Replace {
            destination: dest("100.96.2.0/24"),
            from: Target::Instance("i-old".into()),
            to: Target::NetworkInterface("eni-2".into()),
        });
        table.record(&RouteAction::Delete {
            destination: dest("100.96.9.0/24"),
            target: Target::Instance("i-9".into()),
        });
        let mut report = Report::new(vec![], "vpc-0123456789abcdef0", dry_run);
        report.source_route_table_id = Some("rtb-0c".into());
        report.managed_routes = 2;
        report.tables = vec![table, TableReport::new("rtb-0b")];
        report.finish()
    }

    #[test]
    fn the_plan_reads_as_one_line_per_change_then_totals() {
        let text = render(&report(true), false);
        let expected = "\
Source rtb-0c in vpc-0123456789abcdef0: 2 managed routes

rtb-0a (private_us-east-1a)
  - 100.96.9.0/24        i-9
  ~ 100.96.2.0/24        i-old -> eni-2
  + 100.96.1.0/24        -> i-1

rtb-0b
    in sync

Plan: 1 to create, 1 to replace, 1 to delete, in 1 of 2 tables.
";
        assert_eq!(text, expected);
        assert!(render(&report(false), false).contains("Applied: 1 created, 1 replaced, 1 deleted, in 1 of 2 tables."));
        assert!(render(&report(true), true).contains("\x1b[32m+\x1b[0m"));
    }
}
