//! What the egress job reads, in two round trips: the enrolled route
//! tables, the VPC's subnets (for the tables' zones), the enrolled NAT
//! instances and the NAT gateways, all concurrently; then the status checks
//! of the running NAT instances, and, when a probe port is set, a TCP
//! connect to each of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::config::{Config, FAILBACK_CLOCK_TAG};
use super::model::{
    DefaultRoute, EgressTable, Nat, NatGatewayFacts, NatInstanceFacts, NatKind, ProbeResult, TableZone,
};
use crate::aws::ec2::model::{
    Destination, Filter, Instance, InstanceStatus, RouteOrigin, RouteState, RouteTable, Target,
};
use crate::aws::ec2::{AwsError, Instances, LeavingInstances, Nats, RouteTables, StatusCheck, all_pages, describe_all};

/// How long a probe may take to connect.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one observe found.
#[derive(Clone, Debug)]
pub struct Observed {
    pub tables: Vec<EgressTable>,
    pub nats: Vec<Nat>,
}

/// Reads everything the planner needs. Every list is restricted to
/// `VPC_ID` and the enrolment tag, by filter and again client-side (the
/// emulator ignores tag filters on NAT gateways).
pub async fn observe<E: RouteTables + Instances + Nats + LeavingInstances>(
    ec2: &E,
    config: &Config,
    deadline: Option<Instant>,
) -> Result<Observed, AwsError> {
    let vpc = Filter::new("vpc-id", [config.vpc_id.as_str()]);
    let enrolled = Filter::new(format!("tag:{}", config.tag_key), [config.router_id.as_str()]);
    let table_filters = [vpc.clone(), enrolled.clone()];
    let instance_filters = [vpc.clone(), enrolled];
    let vpc_only = [vpc];
    // One round trip: the tables, subnets, NAT instances and gateways, the
    // leaving instances, and the impaired ones. EC2 cannot filter statuses by
    // tag, but it can by status: asking for the impaired instances of each
    // check returns the few that are, with no NAT id to know first (only an
    // impaired check counts unhealthy, rule 1).
    let (tables, subnets, mut instances, gateways, leaving, impaired_system, impaired_instance) = futures::try_join!(
        describe_all(ec2, &table_filters),
        all_pages("DescribeSubnets", |t| ec2.describe_subnets(&vpc_only, t)),
        all_pages("DescribeInstances", |t| ec2.describe_instances(&instance_filters, t)),
        all_pages("DescribeNatGateways", |t| ec2.describe_nat_gateways(&vpc_only, t)),
        async { Ok::<_, AwsError>(crate::aws::ec2::leaving_or_none(ec2).await) },
        all_pages("DescribeInstanceStatus", |t| ec2.describe_impaired(StatusCheck::System, t)),
        all_pages("DescribeInstanceStatus", |t| ec2.describe_impaired(StatusCheck::Instance, t)),
    )?;
    crate::aws::ec2::mark_leaving(&mut instances, &leaving);
    let is_enrolled = |tags: &BTreeMap<String, String>| tags.get(&config.tag_key) == Some(&config.router_id);
    let subnet_zone: BTreeMap<String, String> = subnets.into_iter().map(|s| (s.id, s.zone)).collect();

    let instances: Vec<Instance> =
        instances.into_iter().filter(|i| i.vpc_id == config.vpc_id && is_enrolled(&i.tags)).collect();
    // The probes, when asked for, need the instances' addresses: a second round
    // trip only then.
    let probes = match config.probe_port {
        Some(port) => probe_all(&instances, port, deadline).await,
        None => BTreeMap::new(),
    };
    // Not impaired is all the rule needs to know of the others.
    let mut statuses: BTreeMap<String, InstanceStatus> = BTreeMap::new();
    for s in impaired_system.into_iter().chain(impaired_instance) {
        let entry =
            statuses.entry(s.id.clone()).or_insert(InstanceStatus { id: s.id.clone(), system: None, instance: None });
        if s.system.as_deref() == Some("impaired") {
            entry.system = s.system;
        }
        if s.instance.as_deref() == Some("impaired") {
            entry.instance = s.instance;
        }
    }
    let mut nats: Vec<Nat> = instances
        .into_iter()
        .map(|i| {
            let status = statuses.get(&i.id);
            Nat {
                zone: i.tags.get(&config.zone_tag_key).cloned().or(i.zone.clone()),
                kind: NatKind::Instance {
                    facts: NatInstanceFacts {
                        state: i.state.clone(),
                        system_status: status.and_then(|s| s.system.clone()),
                        instance_status: status.and_then(|s| s.instance.clone()),
                        source_dest_check: i.source_dest_check,
                        probe: probes.get(&i.id).cloned(),
                        leaving: i.leaving,
                    },
                    eni_ids: i.eni_ids,
                    private_ip: i.private_ip,
                },
                id: i.id,
            }
        })
        .collect();
    nats.extend(gateways.into_iter().filter(|g| g.vpc_id == config.vpc_id && is_enrolled(&g.tags)).map(|g| {
        let zone = match g.regional {
            true => None,
            false => g
                .tags
                .get(&config.zone_tag_key)
                .cloned()
                .or_else(|| g.subnet_id.as_ref().and_then(|s| subnet_zone.get(s).cloned())),
        };
        Nat {
            id: g.id,
            zone,
            kind: NatKind::Gateway { regional: g.regional, facts: NatGatewayFacts { state: g.state } },
        }
    }));
    nats.sort_by(|a, b| a.id.cmp(&b.id));

    let destination = Destination::Cidr(config.destination);
    let tables = tables
        .into_iter()
        .filter(|t| t.vpc_id == config.vpc_id && is_enrolled(&t.tags))
        .map(|t| egress_table(t, &destination, &config.zone_tag_key, &subnet_zone))
        .collect();
    Ok(Observed { tables, nats })
}

fn egress_table(
    table: RouteTable,
    destination: &Destination,
    zone_tag_key: &str,
    subnet_zone: &BTreeMap<String, String>,
) -> EgressTable {
    let zone = match table.tags.get(zone_tag_key) {
        Some(zone) => TableZone::Zone(zone.clone()),
        None => {
            let zones: BTreeSet<&String> = table.subnet_ids.iter().filter_map(|s| subnet_zone.get(s)).collect();
            match zones.len() {
                0 => TableZone::None,
                1 => TableZone::Zone(zones.into_iter().next().cloned().unwrap_or_default()),
                _ => TableZone::Several(zones.into_iter().cloned().collect()),
            }
        }
    };
    let default_route = match table.route(destination) {
        None => DefaultRoute::Missing,
        Some(route) if route.origin != RouteOrigin::CreateRoute => {
            DefaultRoute::Other { kind: "a propagated route".into(), id: route.target.id().to_owned() }
        }
        // Rule 4: a blackhole is a failed NAT only through an instance, an
        // interface or a NAT gateway; through anything else (a transit
        // gateway, peering, a firewall endpoint) it is not ours to replace.
        Some(route) if route.state == RouteState::Blackhole => match &route.target {
            Target::Instance(id) | Target::NetworkInterface(id) | Target::NatGateway(id) => {
                DefaultRoute::Blackhole(id.to_string())
            }
            other => {
                DefaultRoute::Other { kind: format!("blackholed {}", target_kind(other)), id: other.id().to_owned() }
            }
        },
        Some(route) => match &route.target {
            Target::Instance(id) => DefaultRoute::Instance(id.to_string()),
            Target::NetworkInterface(id) => DefaultRoute::NetworkInterface(id.to_string()),
            Target::NatGateway(id) => DefaultRoute::NatGateway(id.to_string()),
            other => DefaultRoute::Other { kind: target_kind(other).into(), id: other.id().to_owned() },
        },
    };
    EgressTable {
        name: table.tags.get("Name").cloned(),
        home_healthy_since: table.tags.get(FAILBACK_CLOCK_TAG).and_then(|v| v.parse().ok()),
        id: table.id,
        zone,
        default_route,
    }
}

fn target_kind(target: &Target) -> &'static str {
    match target {
        Target::Gateway(id) if id.starts_with("igw-") => "internet gateway",
        Target::Gateway(id) if id.starts_with("vgw-") => "virtual private gateway",
        Target::Gateway(id) if id.starts_with("vpce-") => "VPC endpoint (firewall or gateway load balancer)",
        Target::Gateway(_) => "gateway",
        Target::TransitGateway(_) => "transit gateway",
        Target::VpcPeeringConnection(_) => "peering connection",
        Target::EgressOnlyInternetGateway(_) => "egress-only internet gateway",
        Target::LocalGateway(_) => "local gateway",
        Target::CarrierGateway(_) => "carrier gateway",
        Target::CoreNetwork(_) => "core network",
        _ => "target",
    }
}

/// A TCP connect to each running NAT instance's private address, all at
/// once, each within [`PROBE_TIMEOUT`] and the deadline. An instance that
/// is not running, or has no private address, is not probed.
async fn probe_all(instances: &[Instance], port: u16, deadline: Option<Instant>) -> BTreeMap<String, ProbeResult> {
    let mut timeout = PROBE_TIMEOUT;
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        timeout = timeout.min(left.saturating_sub(crate::shared::apply::DEADLINE_MARGIN));
    }
    let probes = instances.iter().filter(|i| i.state == "running").filter_map(|i| {
        let ip = i.private_ip.clone()?;
        Some(async move {
            let result = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip.as_str(), port))).await
            {
                Ok(Ok(_)) => ProbeResult::Answered,
                Ok(Err(e)) => ProbeResult::Failed(format!("{ip}:{port}: {e}")),
                Err(_) => ProbeResult::Failed(format!("{ip}:{port}: no answer within {} ms", timeout.as_millis())),
            };
            (i.id.clone(), result)
        })
    });
    futures::future::join_all(probes).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ec2::model::Route;

    fn default_route_of(target: Target, state: RouteState, origin: RouteOrigin) -> DefaultRoute {
        let destination = Destination::Cidr("0.0.0.0/0".parse().unwrap());
        let route = Route { state, origin, ..Route::active(destination.clone(), target) };
        let table = RouteTable::new("rtb-1", "vpc-1").with_tag("zone", "us-east-1a").with_route(route);
        egress_table(table, &destination, "zone", &BTreeMap::new()).default_route
    }

    #[test]
    fn a_blackhole_is_a_failed_nat_only_through_an_instance_an_interface_or_a_nat_gateway() {
        use RouteOrigin::{CreateRoute, EnableVgwRoutePropagation};
        use RouteState::{Active, Blackhole};
        let other = |kind: &str, id: &str| DefaultRoute::Other { kind: kind.into(), id: id.into() };
        let cases = [
            (Target::Instance("i-1".into()), Blackhole, CreateRoute, DefaultRoute::Blackhole("i-1".into())),
            (Target::NetworkInterface("eni-1".into()), Blackhole, CreateRoute, DefaultRoute::Blackhole("eni-1".into())),
            (Target::NatGateway("nat-1".into()), Blackhole, CreateRoute, DefaultRoute::Blackhole("nat-1".into())),
            (
                Target::TransitGateway("tgw-1".into()),
                Blackhole,
                CreateRoute,
                other("blackholed transit gateway", "tgw-1"),
            ),
            (
                Target::VpcPeeringConnection("pcx-1".into()),
                Blackhole,
                CreateRoute,
                other("blackholed peering connection", "pcx-1"),
            ),
            (
                Target::Gateway("vpce-1".into()),
                Blackhole,
                CreateRoute,
                other("blackholed VPC endpoint (firewall or gateway load balancer)", "vpce-1"),
            ),
            (
                Target::Gateway("vgw-1".into()),
                Blackhole,
                EnableVgwRoutePropagation,
                other("a propagated route", "vgw-1"),
            ),
            (Target::Unknown, Blackhole, CreateRoute, other("blackholed target", "-")),
            (Target::Instance("i-1".into()), Active, CreateRoute, DefaultRoute::Instance("i-1".into())),
            (Target::TransitGateway("tgw-1".into()), Active, CreateRoute, other("transit gateway", "tgw-1")),
        ];
        for (target, state, origin, expected) in cases {
            assert_eq!(default_route_of(target.clone(), state, origin), expected, "{target:?} {state:?}");
        }
    }
}
