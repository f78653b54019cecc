//! The command line: `kube-rtsync plan` and `kube-rtsync sync`, the same
//! reconcile as the Lambda, run from an operator's terminal (when
//! `AWS_LAMBDA_RUNTIME_API` is not set). Configuration comes from the same
//! environment variables; flags override them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::ec2::AwsEc2;
use crate::event::Trigger;
use crate::limiter::WriteLimiter;
use crate::plan::RouteAction;
use crate::report::{Outcome, Report};
use crate::sync::Reconciler;
use crate::{Error, Result};

/// Mirrors a Kubernetes cluster's kubenet pod routes into every private
/// route table of its VPC.
///
/// Outside AWS Lambda the binary is a command line: `plan` shows what a sync
/// would change, `sync` makes the changes. Both read the configuration from
/// the environment variables the function uses (VPC_ID, KUBE_CLUSTER_NAME,
/// SOURCE_ROUTE_TABLE_ID, KUBE_ROUTE_CIDRS, PRIVATE_RT_FILTERS, ...), and
/// the flags below override them. AWS credentials and region come from the
/// standard chain (environment, profiles, SSO).
#[derive(Debug, Parser)]
#[command(name = "kube-rtsync", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the route changes a sync would make, per target table. Changes nothing.
    Plan {
        /// Exit 0 when there is nothing to do, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make every target table mirror the cluster's pod routes, and print the report.
    Sync {
        /// Plan and report only (the same as DRY_RUN=true).
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct Options {
    /// The VPC to work in [env: VPC_ID]
    #[arg(long, global = true, value_name = "VPC_ID")]
    pub vpc_id: Option<String>,
    /// The cluster whose tagged route table is the source [env: KUBE_CLUSTER_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Use this route table as the source instead of the tag lookup [env: SOURCE_ROUTE_TABLE_ID]
    #[arg(long, global = true, value_name = "RTB_ID")]
    pub source_route_table_id: Option<String>,
    /// Comma-separated CIDRs whose routes are managed [env: KUBE_ROUTE_CIDRS] [default: 100.96.0.0/11]
    #[arg(long, global = true, value_name = "CIDRS")]
    pub route_cidrs: Option<String>,
    /// JSON array of DescribeRouteTables filters selecting the targets [env: PRIVATE_RT_FILTERS]
    #[arg(long, global = true, value_name = "JSON")]
    pub filters: Option<String>,
    /// Output format: a table for people, or the JSON report the Lambda returns
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// AWS profile to use (else the standard chain: AWS_PROFILE, environment, SSO, ...)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (else AWS_REGION or the profile's)
    #[arg(long, global = true)]
    pub region: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

impl Options {
    /// The configuration: flags first, then the environment.
    pub fn config(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, config::ConfigError> {
        let mut overrides: HashMap<&str, &str> = HashMap::new();
        let flags = [
            (config::VPC_ID, &self.vpc_id),
            (config::KUBE_CLUSTER_NAME, &self.cluster_name),
            (config::SOURCE_ROUTE_TABLE_ID, &self.source_route_table_id),
            (config::KUBE_ROUTE_CIDRS, &self.route_cidrs),
            (config::PRIVATE_RT_FILTERS, &self.filters),
        ];
        for (name, value) in flags {
            if let Some(value) = value {
                overrides.insert(name, value);
            }
        }
        Config::from_lookup(|name| overrides.get(name).map(|v| v.to_string()).or_else(|| lookup(name)))
    }
}

/// Runs the command line; returns the process exit code.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match cli.options.config(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kube-rtsync: invalid configuration: {err}");
            return ExitCode::from(1);
        }
    };
    let (verb, detailed) = match cli.command {
        Command::Plan { detailed_exitcode } => {
            config.dry_run = true;
            ("plan", detailed_exitcode)
        }
        Command::Sync { dry_run } => {
            config.dry_run |= dry_run;
            ("sync", false)
        }
    };
    // A person is watching: no wait for routes that may never come.
    config.route_wait = Duration::ZERO;

    let mut loader = match crate::sdk::config_loader(|name| std::env::var(name).ok()) {
        Ok(loader) => loader,
        Err(err) => return finish(verb, detailed, cli.options.output, Err(err.into())),
    };
    if let Some(profile) = &cli.options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &cli.options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let ec2 = AwsEc2::new(crate::sdk::ec2_client(&loader.load().await, Default::default()));
    let limiter = WriteLimiter::new(config.write_rate);
    let reconciler = Reconciler { ec2: &ec2, config: &config, limiter: &limiter, deadline: None };
    let result = reconciler.reconcile(vec![Trigger::Manual { command: verb.to_owned() }]).await;
    finish(verb, detailed, cli.options.output, result)
}

/// Prints the report (or the error) and picks the exit code.
fn finish(verb: &str, detailed: bool, output: Output, result: Result<Report>) -> ExitCode {
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            eprintln!("kube-rtsync {verb}: {err}");
            return ExitCode::from(1);
        }
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Output::Human => print!("{}", render(&report, colour_wanted())),
    }
    if !report.is_complete() {
        eprintln!("kube-rtsync {verb}: {}", Error::Incomplete(Box::new(report)));
        return ExitCode::from(1);
    }
    let pending = report.totals.created + report.totals.replaced + report.totals.deleted > 0;
    ExitCode::from(if detailed && pending { 2 } else { 0 })
}

fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Destination, Target};
    use crate::plan::RouteAction;
    use crate::report::TableReport;

    fn report(dry_run: bool) -> Report {
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

    #[test]
    fn flags_override_the_environment() {
        let cli = Cli::try_parse_from([
            "kube-rtsync",
            "plan",
            "--vpc-id",
            "vpc-0123456789abcdef1",
            "--route-cidrs",
            "10.1.0.0/16",
            "--detailed-exitcode",
        ])
        .unwrap();
        let env: HashMap<&str, &str> =
            [("VPC_ID", "vpc-0123456789abcdef0"), ("KUBE_CLUSTER_NAME", "k8s.example.com")].into();
        let config = cli.options.config(|name| env.get(name).map(|v| v.to_string())).unwrap();
        assert_eq!(config.vpc_id, "vpc-0123456789abcdef1");
        assert_eq!(config.managed.to_string(), "10.1.0.0/16");
        assert_eq!(config.cluster_name.as_deref(), Some("k8s.example.com"));
        assert!(matches!(cli.command, Command::Plan { detailed_exitcode: true }));
    }

    #[test]
    fn exit_codes_follow_the_detailed_convention() {
        let code = |detailed, result| finish("plan", detailed, Output::Json, result);
        assert_eq!(code(true, Ok(report(true))), ExitCode::from(2));
        assert_eq!(code(false, Ok(report(true))), ExitCode::from(0));
        let mut in_sync = Report::new(vec![], "vpc-0123456789abcdef0", true);
        in_sync.tables = vec![TableReport::new("rtb-0b")];
        assert_eq!(code(true, Ok(in_sync.finish())), ExitCode::from(0));
        let err = Error::SourceNotFound { selector: "x".into(), vpc_id: "vpc-1".into() };
        assert_eq!(code(true, Err(err)), ExitCode::from(1));
    }
}
