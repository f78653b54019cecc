//! The command line: `kube-rtsync [JOB] plan|sync`, the same reconcile as
//! the Lambda, run from an operator's terminal (when
//! `AWS_LAMBDA_RUNTIME_API` is not set). Configuration comes from the same
//! environment variables; flags override them. `plan` and `sync` alone are
//! the routes job.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::events::AwsEventBridge;
use crate::jobs::routes::{self, config::Config};
use crate::jobs::{JobName, egress, eip, targets};
use crate::shared::changes::Arns;
use crate::shared::config::ConfigError;
use crate::shared::error::Failure;
use crate::shared::event::Trigger;
use crate::shared::job::{EventsTo, Job, Reconcile, Run, Throttles, publish_changes};
use crate::shared::report::{JobError, JobReport};

/// Keeps the networking around a self-managed Kubernetes cluster on AWS
/// right as nodes come and go.
///
/// Outside AWS Lambda the binary is a command line: `JOB plan` shows what a
/// sync would change, `JOB sync` makes the changes (`plan` and `sync` alone
/// are the routes job). Both read the configuration from the environment
/// variables the function uses (VPC_ID, KUBE_CLUSTER_NAME,
/// SOURCE_ROUTE_TABLE_ID, KUBE_ROUTE_CIDRS, PRIVATE_RT_FILTERS, ...), and
/// the flags below override them. AWS credentials and region come from the
/// standard chain (environment, profiles, SSO).
#[derive(Debug, Parser)]
#[command(name = "kube-rtsync", version = crate::VERSION, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Routes job: show the route changes a sync would make, per target table.
    /// Changes nothing.
    Plan {
        /// Exit 0 when there is nothing to do, 2 when changes are pending, 1 on
        /// error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Routes job: make every target table mirror the cluster's pod routes, and
    /// print the report.
    Sync {
        /// Plan and report only (the same as DRY_RUN=true).
        #[arg(long)]
        dry_run: bool,
    },
    /// Mirror the cluster's kubenet pod routes into every private route table.
    Routes {
        #[command(subcommand)]
        verb: Verb,
    },
    /// Keep each enrolled private route table's default route on a healthy NAT
    /// (EGRESS_TAG_KEY, EGRESS_ROUTER_ID, ... from the environment).
    Egress {
        #[command(subcommand)]
        verb: Verb,
    },
    /// Keep hand-made NLB target groups holding exactly the running nodes
    /// (TARGET_GROUP_ARNS, TARGET_NODE_TAGS, ... from the environment).
    Targets {
        #[command(subcommand)]
        verb: Verb,
    },
    /// Give each selected node an Elastic IP from a tagged pool, a DNS name and
    /// a lease record (EIP_NODE_TAGS, EIP_POOL_TAGS, ... from the environment).
    Eip {
        #[command(subcommand)]
        verb: Verb,
    },
}

/// What to do with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum Verb {
    /// Show the changes a sync would make. Changes nothing.
    Plan {
        /// Exit 0 when there is nothing to do, 2 when changes are pending, 1 on
        /// error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the changes, and print the report.
    Sync {
        /// Plan and report only (the same as DRY_RUN=true).
        #[arg(long)]
        dry_run: bool,
    },
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Plan { .. } => "plan",
            Verb::Sync { .. } => "sync",
        }
    }

    /// Whether nothing may be changed: a plan, or a sync with `--dry-run`.
    fn dry_run(self) -> bool {
        match self {
            Verb::Plan { .. } => true,
            Verb::Sync { dry_run } => dry_run,
        }
    }

    fn detailed(self) -> bool {
        matches!(self, Verb::Plan { detailed_exitcode: true })
    }
}

impl Command {
    /// The job and what to do with it.
    pub fn job(&self) -> (JobName, Verb) {
        match *self {
            Command::Plan { detailed_exitcode } => (JobName::Routes, Verb::Plan { detailed_exitcode }),
            Command::Sync { dry_run } => (JobName::Routes, Verb::Sync { dry_run }),
            Command::Routes { verb } => (JobName::Routes, verb),
            Command::Egress { verb } => (JobName::Egress, verb),
            Command::Targets { verb } => (JobName::Targets, verb),
            Command::Eip { verb } => (JobName::Eip, verb),
        }
    }
}

#[derive(Debug, Args)]
pub struct Options {
    /// The VPC to work in [env: VPC_ID]
    #[arg(long, global = true, value_name = "VPC_ID")]
    pub vpc_id: Option<String>,
    /// The cluster whose tagged route table is the source [env:
    /// KUBE_CLUSTER_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Use this route table as the source instead of the tag lookup [env:
    /// SOURCE_ROUTE_TABLE_ID]
    #[arg(long, global = true, value_name = "RTB_ID")]
    pub source_route_table_id: Option<String>,
    /// Comma-separated CIDRs whose routes are managed [env: KUBE_ROUTE_CIDRS]
    /// [default: 100.96.0.0/11]
    #[arg(long, global = true, value_name = "CIDRS")]
    pub route_cidrs: Option<String>,
    /// JSON array of DescribeRouteTables filters selecting the targets [env:
    /// PRIVATE_RT_FILTERS]
    #[arg(long, global = true, value_name = "JSON")]
    pub filters: Option<String>,
    /// Output format: a table for people, or the JSON report the Lambda returns
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// AWS profile to use (else the standard chain: AWS_PROFILE, environment,
    /// SSO, ...)
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
    /// The routes job's configuration: flags first, then the environment.
    pub fn config(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_lookup(self.lookup(lookup))
    }

    /// The environment with the flags on top.
    pub fn lookup<'a>(&'a self, lookup: impl Fn(&str) -> Option<String> + 'a) -> impl Fn(&str) -> Option<String> + 'a {
        let mut overrides: HashMap<&str, &str> = HashMap::new();
        let flags = [
            (routes::config::VPC_ID, &self.vpc_id),
            (routes::config::KUBE_CLUSTER_NAME, &self.cluster_name),
            (routes::config::SOURCE_ROUTE_TABLE_ID, &self.source_route_table_id),
            (routes::config::KUBE_ROUTE_CIDRS, &self.route_cidrs),
            (routes::config::PRIVATE_RT_FILTERS, &self.filters),
        ];
        for (name, value) in flags {
            if let Some(value) = value {
                overrides.insert(name, value);
            }
        }
        move |name| overrides.get(name).map(|v| v.to_string()).or_else(|| lookup(name))
    }
}

/// Runs the command line; returns the process exit code.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let (job, verb) = cli.command.job();
    match job {
        JobName::Routes => command::<routes::Routes>(&cli.options, verb).await,
        JobName::Egress => command::<egress::Egress>(&cli.options, verb).await,
        JobName::Targets => command::<targets::Targets>(&cli.options, verb).await,
        JobName::Eip => command::<eip::Eip>(&cli.options, verb).await,
    }
}

/// One command for any job: the configuration from the environment and the
/// flags, nothing written for `plan` or `--dry-run`, the same reconcile as
/// the Lambda (without a deadline), the report printed.
async fn command<J: Job>(options: &Options, verb: Verb) -> ExitCode {
    let result = reconcile::<J>(options, verb).await;
    finish(verb.name(), verb.detailed(), options.output, result)
}

async fn reconcile<J: Job>(options: &Options, verb: Verb) -> Result<J::Report, Failure<J::Problem>> {
    let mut config = J::config(&options.lookup(|name| std::env::var(name).ok()))?;
    config.dry_run |= verb.dry_run();
    J::for_a_person(&mut config);
    let sdk = sdk_config(options).await?;
    let throttles = Throttles::new();
    let clients = J::clients(&sdk, &throttles);
    let limiter = throttles.ec2_limiter(&config);
    let run = Run::<J> { clients: &clients, config: &config, limiter: &limiter, deadline: None };
    let triggers = vec![Trigger::Manual { command: verb.name().to_owned() }];
    let result = J::reconciler(run).invoke(triggers, crate::shared::clock::now_secs()).await;
    // A sync publishes its change events as the function does; `plan` and
    // `--dry-run` never do (the config says dry run).
    let report = match &result {
        Ok(report) => Some(report),
        Err(err) => err.report(),
    };
    // publish_changes makes no call without a change to publish.
    if config.event_bus.is_some() {
        let bus = AwsEventBridge::new(crate::aws::sdk::eventbridge_client(&sdk, throttles.total.service()));
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        let arns = Arns::in_region(&region, std::env::var("AWS_ACCOUNT_ID").ok());
        let invocation_id = format!("cli-{}-{}", crate::shared::clock::now_ms(), std::process::id());
        let to = EventsTo { bus: &bus, arns: &arns, invocation_id: &invocation_id };
        let published = publish_changes(J::NAME, &config, report, Some(&to), None).await;
        if published.failed > 0 {
            eprintln!(
                "kube-rtsync: {} of {} change events not published to {} (see the log)",
                published.failed,
                published.events + published.failed,
                config.event_bus.as_deref().unwrap_or_default()
            );
        }
    }
    result
}

/// The SDK configuration for a command: the environment's, with the
/// profile and region flags on top.
async fn sdk_config(options: &Options) -> Result<aws_config::SdkConfig, ConfigError> {
    let mut loader = crate::aws::sdk::config_loader(|name| std::env::var(name).ok())?;
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    Ok(loader.load().await)
}

/// Prints the report (or the error) and picks the exit code: 0 done or
/// nothing to do, 2 changes pending (with `--detailed-exitcode`), 1 error
/// or incomplete.
fn finish<E: JobError>(verb: &str, detailed: bool, output: Output, result: Result<E::Report, E>) -> ExitCode {
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            match err.report() {
                Some(report) => print_report(report, output),
                None if err.kind() == "InvalidConfiguration" => {
                    eprintln!("kube-rtsync: {err}");
                    return ExitCode::from(1);
                }
                None => {}
            }
            eprintln!("kube-rtsync {verb}: {err}");
            return ExitCode::from(1);
        }
    };
    print_report(&report, output);
    let pending = report.changes() > 0;
    ExitCode::from(if detailed && pending { 2 } else { 0 })
}

fn print_report<R: JobReport>(report: &R, output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report).unwrap_or_default()),
        Output::Human => print!("{}", report.render(colour_wanted())),
    }
}

fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::routes::report::{Report, TableReport};
    use crate::jobs::routes::{Error, Problem};

    fn report(dry_run: bool) -> Report {
        crate::jobs::routes::render::sample_report(dry_run)
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
        let err = Error::Job(Problem::SourceNotFound { selector: "x".into(), vpc_id: "vpc-1".into() });
        assert_eq!(code(true, Err(err)), ExitCode::from(1));
    }
}
