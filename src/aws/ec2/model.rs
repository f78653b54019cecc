//! EC2's resources as domain types, free of any SDK type: route tables and
//! routes (destinations, targets, state, origin), instances and their
//! status checks, subnets, NAT gateways and Elastic IPs. Every job speaks
//! these.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Where a route sends traffic from: a CIDR block or a managed prefix list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Destination {
    /// An IPv4 or IPv6 CIDR block (`DestinationCidrBlock` /
    /// `DestinationIpv6CidrBlock`).
    Cidr(IpNet),
    /// A managed prefix list (`DestinationPrefixListId`); never managed by
    /// kube-rtsync.
    PrefixList(Box<str>),
}

impl Destination {
    /// The CIDR of this destination, if it is one.
    pub fn cidr(&self) -> Option<IpNet> {
        match self {
            Destination::Cidr(net) => Some(*net),
            Destination::PrefixList(_) => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Cidr(net) => write!(f, "{net}"),
            Destination::PrefixList(id) => f.write_str(id),
        }
    }
}

impl From<IpNet> for Destination {
    fn from(net: IpNet) -> Self {
        Destination::Cidr(net)
    }
}

/// An EC2 resource id, inline when short (as EC2 ids are).
pub type Id = smol_str::SmolStr;

/// Where a route sends traffic to.
///
/// The variants follow the target fields of EC2's `Route` shape. When EC2
/// reports both an instance and a network interface for a route (it does for
/// routes created by instance id), the network interface wins: nodes with
/// several interfaces reject `InstanceId` on `CreateRoute`.
///
/// Ids are stored inline (EC2 ids fit in 23 bytes): planning compares a
/// target per route, and an inline id is compared without a trip to the heap.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    NetworkInterface(Id),
    Instance(Id),
    NatGateway(Id),
    /// Internet or virtual private gateway, or `local`.
    Gateway(Id),
    TransitGateway(Id),
    VpcPeeringConnection(Id),
    EgressOnlyInternetGateway(Id),
    LocalGateway(Id),
    CarrierGateway(Id),
    CoreNetwork(Id),
    /// EC2 reported no target we know of (for example a blackhole whose
    /// target is gone and no longer listed).
    Unknown,
}

impl Target {
    /// The id of the target as EC2 prints it (`eni-…`, `i-…`, …).
    pub fn id(&self) -> &str {
        match self {
            Target::NetworkInterface(id)
            | Target::Instance(id)
            | Target::NatGateway(id)
            | Target::Gateway(id)
            | Target::TransitGateway(id)
            | Target::VpcPeeringConnection(id)
            | Target::EgressOnlyInternetGateway(id)
            | Target::LocalGateway(id)
            | Target::CarrierGateway(id)
            | Target::CoreNetwork(id) => id,
            Target::Unknown => "-",
        }
    }

    /// Whether `CreateRoute` / `ReplaceRoute` can point a route at this
    /// target. The `local` gateway and unknown targets cannot be copied.
    pub fn is_copyable(&self) -> bool {
        match self {
            Target::Unknown => false,
            Target::Gateway(id) => id != "local",
            _ => true,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// `Route.State`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    Active,
    /// The target is gone (for example the node was terminated).
    Blackhole,
}

/// `Route.Origin`: who made the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteOrigin {
    /// A static route made with `CreateRoute`: the only kind kube-rtsync
    /// touches.
    CreateRoute,
    /// The `local` route EC2 makes with the table.
    CreateRouteTable,
    /// A route propagated from a virtual private gateway.
    EnableVgwRoutePropagation,
    /// An origin EC2 does not document (or none at all); never touched.
    /// The name is not kept (a skipped route's reason then says only
    /// `Other`): a route is one byte of origin, not a string, which keeps
    /// the routes of a 200-table VPC compact for the planner.
    Other,
}

/// One route of a route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: Destination,
    pub target: Target,
    pub state: RouteState,
    pub origin: RouteOrigin,
    /// The instance EC2 says the route reaches, when it says so (it does
    /// for routes to an instance, even when `target` is its interface).
    /// Informational: the planner compares `target` only.
    pub instance_id: Option<Box<str>>,
}

impl Route {
    /// An active static route, the shape kubenet writes and kube-rtsync
    /// mirrors.
    pub fn active(destination: impl Into<Destination>, target: Target) -> Self {
        Route {
            destination: destination.into(),
            target,
            state: RouteState::Active,
            origin: RouteOrigin::CreateRoute,
            instance_id: None,
        }
    }

    /// Whether the route leads to this instance.
    pub fn reaches_instance(&self, instance_id: &str) -> bool {
        self.instance_id.as_deref() == Some(instance_id)
            || matches!(&self.target, Target::Instance(id) if id == instance_id)
    }
}

/// A VPC route table as `DescribeRouteTables` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    pub tags: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    /// The subnets explicitly associated with the table.
    pub subnet_ids: Vec<String>,
}

impl RouteTable {
    pub fn new(id: impl Into<String>, vpc_id: impl Into<String>) -> Self {
        RouteTable {
            id: id.into(),
            vpc_id: vpc_id.into(),
            tags: BTreeMap::new(),
            routes: Vec::new(),
            subnet_ids: Vec::new(),
        }
    }

    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    pub fn with_route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The route for `destination`, if the table has one.
    pub fn route(&self, destination: &Destination) -> Option<&Route> {
        self.routes.iter().find(|r| &r.destination == destination)
    }
}

/// An EC2 `DescribeRouteTables` filter (`Name` / `Values`), as given in
/// `PRIVATE_RT_FILTERS`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Values")]
    pub values: Vec<String>,
}

impl Filter {
    pub fn new<S: Into<String>>(name: impl Into<String>, values: impl IntoIterator<Item = S>) -> Self {
        Filter { name: name.into(), values: values.into_iter().map(Into::into).collect() }
    }
}

/// One page of a describe call.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// A subnet and its Availability Zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
}

/// An instance as `DescribeInstances` reports it, with what the jobs need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub vpc_id: String,
    /// EC2 state name: `pending`, `running`, `stopping`, `stopped`,
    /// `shutting-down`, `terminated`.
    pub state: String,
    pub zone: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Network interfaces, primary (device index 0) first.
    pub eni_ids: Vec<String>,
    pub private_ip: Option<String>,
    pub source_dest_check: Option<bool>,
    /// EC2 has said the instance will go (not part of `DescribeInstances`:
    /// observed beside it, see [`crate::aws::ec2::leaving`]).
    pub leaving: Option<Leaving>,
}

/// Why EC2 has said an instance will go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Leaving {
    /// Its Spot request is `marked-for-termination`: the two-minute
    /// interruption warning.
    SpotInterruption,
    /// A scheduled `instance-stop` or `instance-retirement` event.
    Scheduled { code: String, not_before: Option<String> },
}

impl fmt::Display for Leaving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leaving::SpotInterruption => f.write_str("leaving: Spot interruption warning"),
            Leaving::Scheduled { code, not_before: Some(at) } => write!(f, "leaving: scheduled {code} from {at}"),
            Leaving::Scheduled { code, not_before: None } => write!(f, "leaving: scheduled {code}"),
        }
    }
}

impl Instance {
    /// An instance of `vpc_id` in EC2 state `state`, nothing else known:
    /// what the fakes, the tests and the builders below start from.
    pub fn new(id: impl Into<String>, vpc_id: impl Into<String>, state: impl Into<String>) -> Self {
        Instance { id: id.into(), vpc_id: vpc_id.into(), state: state.into(), ..Instance::default() }
    }

    pub fn with_tags(mut self, pairs: &[(&str, &str)]) -> Self {
        self.tags.extend(tag_map(pairs));
        self
    }

    pub fn with_eni(mut self, eni: impl Into<String>) -> Self {
        self.eni_ids.push(eni.into());
        self
    }

    pub fn in_state(mut self, state: impl Into<String>) -> Self {
        self.state = state.into();
        self
    }

    pub fn leaving_for(mut self, why: Leaving) -> Self {
        self.leaving = Some(why);
        self
    }

    /// EC2 has said it will go (a Spot interruption warning, a scheduled stop
    /// or retirement).
    pub fn is_leaving(&self) -> bool {
        self.leaving.is_some()
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    pub fn is_pending(&self) -> bool {
        self.state == "pending"
    }

    /// The primary network interface (device index 0).
    pub fn primary_eni(&self) -> Option<&str> {
        self.eni_ids.first().map(String::as_str)
    }
}

/// Tags from `key`, `value` pairs.
pub fn tag_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An Elastic IP address.
///
/// An association made by network interface may leave `instance_id` empty: the
/// holder is then found through the interface. Without `association_id` the
/// address counts as free, whatever the other fields say, since there is
/// nothing to disassociate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: String,
    pub association_id: Option<String>,
    pub instance_id: Option<String>,
    pub network_interface_id: Option<String>,
    /// The private address of the interface the address is on (its primary
    /// one unless EC2 was told otherwise).
    #[serde(default)]
    pub private_ip: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Address {
    pub fn is_associated(&self) -> bool {
        self.association_id.is_some()
    }
}

/// `DescribeInstanceStatus`: the two status checks of a running instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    pub id: String,
    /// `ok`, `impaired`, `initializing`, `insufficient-data`, `not-applicable`.
    pub system: Option<String>,
    pub instance: Option<String>,
}

/// A NAT gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatGateway {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: Option<String>,
    /// `pending`, `available`, `deleting`, `deleted`, `failed`.
    pub state: String,
    pub tags: BTreeMap<String, String>,
    /// A regional NAT gateway serves every zone of the VPC.
    pub regional: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_stays_within_80_bytes() {
        // The planner streams every route of every table (200 x 1,000 at
        // EC2's quota): at 120 bytes a route it ran 15% slower.
        assert!(std::mem::size_of::<Route>() <= 80, "{} bytes", std::mem::size_of::<Route>());
    }

    #[test]
    fn local_and_unknown_targets_cannot_be_copied() {
        assert!(!Target::Gateway("local".into()).is_copyable());
        assert!(!Target::Unknown.is_copyable());
        assert!(Target::Gateway("igw-1".into()).is_copyable());
        assert!(Target::NetworkInterface("eni-1".into()).is_copyable());
    }
}
