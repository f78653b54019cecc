//! The narrow EC2 ports the jobs need (route tables and routes; instances,
//! NATs, attributes and tags; Elastic IPs), and their `aws-sdk-ec2`
//! adapter.
//!
//! The traits speak domain types only. The adapter maps SDK shapes into
//! them and keeps the AWS error code of every failure, which is how a
//! harmless race (`RouteAlreadyExists`) is told from a real fault.

use std::future::Future;

use aws_sdk_ec2::types as sdk;
use ipnet::IpNet;

pub mod model;

use crate::aws::error::sdk_error;
pub use crate::aws::error::{AwsError, FailureKind};
use model::{
    Address, Destination, Filter, Instance, InstanceStatus, Leaving, NatGateway, Page, Route, RouteOrigin, RouteState,
    RouteTable, Subnet, Target,
};

/// `CreateRoute` found the destination already routed.
pub const ROUTE_ALREADY_EXISTS: &str = "RouteAlreadyExists";
/// `DeleteRoute` (and, on AWS, `ReplaceRoute`) found no such route.
pub const ROUTE_NOT_FOUND: &str = "InvalidRoute.NotFound";
/// The route table does not exist.
pub const ROUTE_TABLE_NOT_FOUND: &str = "InvalidRouteTableID.NotFound";
/// `ReplaceRoute` of a destination the table does not route answers this
/// code, with a message saying there is no route.
pub const INVALID_PARAMETER_VALUE: &str = "InvalidParameterValue";
/// The table is at its route quota.
pub const ROUTE_LIMIT_EXCEEDED: &str = "RouteLimitExceeded";

/// Page size asked of `DescribeRouteTables` (EC2 takes 5 to 100). A page
/// is held twice while it is read (the XML, then the SDK's structures), so
/// small pages bound the peak memory of a VPC at EC2's maxima (README,
/// "Performance", has the figures); a VPC of up to 20 tables is still read
/// in one call.
pub const DESCRIBE_PAGE_SIZE: i32 = 20;

/// One page of `DescribeRouteTables`.
#[derive(Clone, Debug, Default)]
pub struct RouteTablePage {
    pub route_tables: Vec<RouteTable>,
    pub next_token: Option<String>,
}

/// EC2's ports, one per concern, each job taking only those it uses
/// (routes: [`RouteTables`] and [`Instances`]; egress: those and [`Nats`];
/// targets: [`Instances`]; eip: [`Instances`] and [`Addresses`]). Each is
/// implemented by [`AwsEc2`] and by `FakeEc2` (feature `fakes`).
///
/// Route tables and their routes.
pub trait RouteTables: Send + Sync {
    /// One page of `DescribeRouteTables` with these filters.
    fn describe_route_tables(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<RouteTablePage, AwsError>> + Send;

    fn create_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
        target: &Target,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn replace_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
        target: &Target,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn delete_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The VPC's instances.
pub trait Instances: Send + Sync {
    fn describe_instances(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Instance>, AwsError>> + Send;
}

/// One of an instance's two status checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCheck {
    System,
    Instance,
}

impl StatusCheck {
    /// The `DescribeInstanceStatus` filter on this check's status.
    pub fn filter_name(self) -> &'static str {
        match self {
            StatusCheck::System => "system-status.status",
            StatusCheck::Instance => "instance-status.status",
        }
    }
}

/// Sends a describe with `filters`, pages of up to 1,000, from `next_token`;
/// an error keeps the operation's name.
macro_rules! send_filtered {
    ($request:expr, $filters:expr, $next_token:expr, $operation:literal) => {
        $request
            .set_filters(Some(sdk_filters($filters)))
            .max_results(1000)
            .set_next_token($next_token)
            .send()
            .await
            .map_err(|e| sdk_error($operation, e))?
    };
}

/// The Spot request status of the two-minute interruption warning.
pub const SPOT_MARKED_FOR_TERMINATION: &str = "marked-for-termination";
/// The scheduled events after which an instance is gone (stopped or retired).
pub const LEAVING_EVENT_CODES: [&str; 2] = ["instance-stop", "instance-retirement"];

/// The instances EC2 has said will go, asked with server-side filters so
/// that only the few leaving ones come back.
pub trait LeavingInstances: Send + Sync {
    /// `DescribeSpotInstanceRequests` filtered on
    /// [`SPOT_MARKED_FOR_TERMINATION`]: the instance ids.
    fn describe_spot_interruptions(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, AwsError>> + Send;

    /// `DescribeInstanceStatus` filtered on [`LEAVING_EVENT_CODES`]: the
    /// instances with such an event that is neither completed nor
    /// cancelled, and the event.
    fn describe_scheduled_departures(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<(String, Leaving)>, AwsError>> + Send;
}

/// Every leaving instance: both questions at once (one round trip), every
/// page; a Spot warning wins over a scheduled event of the same instance.
pub async fn leaving<E: LeavingInstances>(ec2: &E) -> Result<std::collections::BTreeMap<String, Leaving>, AwsError> {
    let (spot, scheduled) = futures::future::join(
        all_pages("DescribeSpotInstanceRequests", |token| ec2.describe_spot_interruptions(token)),
        all_pages("DescribeInstanceStatus", |token| ec2.describe_scheduled_departures(token)),
    )
    .await;
    let mut out: std::collections::BTreeMap<String, Leaving> = scheduled?.into_iter().collect();
    out.extend(spot?.into_iter().map(|id| (id, Leaving::SpotInterruption)));
    Ok(out)
}

/// [`leaving`], or no instance leaving when EC2 cannot say (a policy
/// without the reads, an SCP, the Spot API in trouble): logged, and the
/// job goes on with what it does without the warning, so that a NAT that
/// really stopped still loses its tables and a stopped node its targets.
pub async fn leaving_or_none<E: LeavingInstances>(ec2: &E) -> std::collections::BTreeMap<String, Leaving> {
    leaving(ec2).await.unwrap_or_else(|err| {
        tracing::warn!(operation = err.operation, code = err.code().unwrap_or("-"), error = %err, hint = err.hint(),
                       "could not read the leaving instances: none counts as leaving in this run");
        Default::default()
    })
}

/// Marks the instances that are leaving.
pub fn mark_leaving(instances: &mut [Instance], leaving: &std::collections::BTreeMap<String, Leaving>) {
    for instance in instances {
        instance.leaving = leaving.get(&instance.id).cloned();
    }
}

/// What the egress job watches and writes besides routes: subnets (for the
/// zones), the NAT instances' status checks and source/destination check,
/// the NAT gateways, and the tags of its failback clock.
pub trait Nats: Send + Sync {
    fn describe_subnets(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Subnet>, AwsError>> + Send;

    /// The running instances of the account whose `check` is `impaired`,
    /// asked with a server-side filter (`system-status.status` or
    /// `instance-status.status`), so that only the few impaired ones come
    /// back, with no instance id to know first.
    fn describe_impaired(
        &self,
        check: StatusCheck,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<InstanceStatus>, AwsError>> + Send;

    fn describe_nat_gateways(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<NatGateway>, AwsError>> + Send;

    /// `ModifyInstanceAttribute` of `SourceDestCheck`.
    fn set_source_dest_check(
        &self,
        instance_id: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn create_tag(
        &self,
        resource_id: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn delete_tag(&self, resource_id: &str, key: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The account's Elastic IPs and their associations (the eip job).
pub trait Addresses: Send + Sync {
    /// Every Elastic IP of the account and region (a few: the default quota is
    /// 5).
    fn describe_addresses(&self) -> impl Future<Output = Result<Vec<Address>, AwsError>> + Send;

    /// `AssociateAddress` with `AllowReassociation=false`: an address that
    /// is already associated is refused (`Resource.AlreadyAssociated`).
    /// With a network interface (the instance's primary one), the address
    /// goes there: EC2 refuses an instance id for an instance with several
    /// interfaces. Returns the association id.
    fn associate_address(
        &self,
        allocation_id: &str,
        instance_id: &str,
        network_interface_id: Option<&str>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    fn disassociate_address(&self, association_id: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// `AssociateAddress` found the address associated already.
pub const ALREADY_ASSOCIATED: &str = "Resource.AlreadyAssociated";
/// `DisassociateAddress` found no such association.
pub const ASSOCIATION_NOT_FOUND: &str = "InvalidAssociationID.NotFound";

/// Pages a describe call may take before kube-rtsync gives up: far above
/// what any VPC holds (EC2 allows 200 route tables per VPC).
pub const MAX_PAGES: usize = 1000;

/// Every item of a paginated describe, following `NextToken` to the end;
/// a token seen twice, or more than [`MAX_PAGES`] pages, is an error.
pub async fn all_pages<T, F, Fut>(operation: &'static str, mut page: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, AwsError>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_PAGES {
        let next = page(token.take()).await?;
        items.extend(next.items);
        match next.next_token {
            Some(next) if !next.is_empty() => {
                if !seen.insert(next.clone()) {
                    return Err(AwsError {
                        operation,
                        kind: FailureKind::Other,
                        code: None,
                        message: format!("the service returned the page token {next:?} twice; stopping"),
                    });
                }
                token = Some(next);
            }
            _ => return Ok(items),
        }
    }
    Err(AwsError {
        operation,
        kind: FailureKind::Other,
        code: None,
        message: format!("more than {MAX_PAGES} pages; stopping"),
    })
}

/// Every route table matching `filters`, following `NextToken` to the end.
/// Bounded as [`all_pages`] is: a repeated token or too many pages is an
/// error, never an endless loop.
pub async fn describe_all<E: RouteTables>(ec2: &E, filters: &[Filter]) -> Result<Vec<RouteTable>, AwsError> {
    all_pages("DescribeRouteTables", |token| async move {
        let page = ec2.describe_route_tables(filters, token).await?;
        Ok(Page { items: page.route_tables, next_token: page.next_token })
    })
    .await
}

/// The EC2 ports ([`RouteTables`], [`Instances`], [`Nats`], [`Addresses`]) over
/// `aws-sdk-ec2`.
#[derive(Clone, Debug)]
pub struct AwsEc2 {
    client: aws_sdk_ec2::Client,
}

impl AwsEc2 {
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        AwsEc2 { client }
    }
}

macro_rules! with_destination {
    ($builder:expr, $destination:expr) => {
        match $destination {
            Destination::Cidr(IpNet::V4(net)) => $builder.destination_cidr_block(net.to_string()),
            Destination::Cidr(IpNet::V6(net)) => $builder.destination_ipv6_cidr_block(net.to_string()),
            Destination::PrefixList(id) => $builder.destination_prefix_list_id(&**id),
        }
    };
}

macro_rules! with_target {
    ($builder:expr, $target:expr) => {
        match $target {
            Target::NetworkInterface(id) => $builder.network_interface_id(id.as_str()),
            Target::Instance(id) => $builder.instance_id(id.as_str()),
            Target::NatGateway(id) => $builder.nat_gateway_id(id.as_str()),
            Target::Gateway(id) if id.starts_with("vpce-") => $builder.vpc_endpoint_id(id.as_str()),
            Target::Gateway(id) => $builder.gateway_id(id.as_str()),
            Target::TransitGateway(id) => $builder.transit_gateway_id(id.as_str()),
            Target::VpcPeeringConnection(id) => $builder.vpc_peering_connection_id(id.as_str()),
            Target::EgressOnlyInternetGateway(id) => $builder.egress_only_internet_gateway_id(id.as_str()),
            Target::LocalGateway(id) => $builder.local_gateway_id(id.as_str()),
            Target::CarrierGateway(id) => $builder.carrier_gateway_id(id.as_str()),
            Target::CoreNetwork(arn) => $builder.core_network_arn(arn.as_str()),
            Target::Unknown => $builder,
        }
    };
}

impl RouteTables for AwsEc2 {
    async fn describe_route_tables(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> Result<RouteTablePage, AwsError> {
        let out = self
            .client
            .describe_route_tables()
            .set_filters(Some(sdk_filters(filters)))
            .max_results(DESCRIBE_PAGE_SIZE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeRouteTables", e))?;
        Ok(RouteTablePage {
            route_tables: out.route_tables().iter().map(route_table_from_sdk).collect(),
            next_token: out.next_token().map(str::to_owned),
        })
    }

    async fn create_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
        target: &Target,
    ) -> Result<(), AwsError> {
        let req = self.client.create_route().route_table_id(route_table_id);
        let req = with_destination!(req, destination);
        let req = with_target!(req, target);
        req.send().await.map_err(|e| sdk_error("CreateRoute", e))?;
        Ok(())
    }

    async fn replace_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
        target: &Target,
    ) -> Result<(), AwsError> {
        let req = self.client.replace_route().route_table_id(route_table_id);
        let req = with_destination!(req, destination);
        let req = with_target!(req, target);
        req.send().await.map_err(|e| sdk_error("ReplaceRoute", e))?;
        Ok(())
    }

    async fn delete_route(&self, route_table_id: &str, destination: &Destination) -> Result<(), AwsError> {
        let req = self.client.delete_route().route_table_id(route_table_id);
        let req = with_destination!(req, destination);
        req.send().await.map_err(|e| sdk_error("DeleteRoute", e))?;
        Ok(())
    }
}

impl Instances for AwsEc2 {
    async fn describe_instances(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> Result<Page<Instance>, AwsError> {
        let out = send_filtered!(self.client.describe_instances(), filters, next_token, "DescribeInstances");
        let items = out.reservations().iter().flat_map(|r| r.instances()).map(instance_from_sdk).collect();
        Ok(Page { items, next_token: out.next_token().map(str::to_owned) })
    }
}

impl LeavingInstances for AwsEc2 {
    async fn describe_spot_interruptions(&self, next_token: Option<String>) -> Result<Page<String>, AwsError> {
        let filter = [Filter::new("status-code", [SPOT_MARKED_FOR_TERMINATION])];
        let request = self.client.describe_spot_instance_requests();
        let out = send_filtered!(request, &filter, next_token, "DescribeSpotInstanceRequests");
        // Filtered again here: an endpoint that ignores the filter must not
        // make every Spot node leave.
        let items = out
            .spot_instance_requests()
            .iter()
            .filter(|r| r.status().and_then(|s| s.code()) == Some(SPOT_MARKED_FOR_TERMINATION))
            .filter_map(|r| r.instance_id().map(str::to_owned))
            .collect();
        Ok(Page { items, next_token: out.next_token().map(str::to_owned) })
    }

    async fn describe_scheduled_departures(
        &self,
        next_token: Option<String>,
    ) -> Result<Page<(String, Leaving)>, AwsError> {
        let filter = [Filter::new("event.code", LEAVING_EVENT_CODES)];
        let out = send_filtered!(self.client.describe_instance_status(), &filter, next_token, "DescribeInstanceStatus");
        let items = out
            .instance_statuses()
            .iter()
            .filter_map(|s| {
                let id = s.instance_id()?;
                let event = s.events().iter().find(|e| {
                    let code = e.code().map(|c| c.as_str());
                    // EC2 keeps completed and cancelled events a while, marked
                    // in their description.
                    let over =
                        e.description().is_some_and(|d| d.starts_with("[Completed]") || d.starts_with("[Canceled]"));
                    code.is_some_and(|c| LEAVING_EVENT_CODES.contains(&c)) && !over
                })?;
                let not_before =
                    event.not_before().and_then(|t| t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime).ok());
                let code = event.code().map(|c| c.as_str().to_owned()).unwrap_or_default();
                Some((id.to_owned(), Leaving::Scheduled { code, not_before }))
            })
            .collect();
        Ok(Page { items, next_token: out.next_token().map(str::to_owned) })
    }
}

impl Nats for AwsEc2 {
    async fn describe_subnets(&self, filters: &[Filter], next_token: Option<String>) -> Result<Page<Subnet>, AwsError> {
        let out = send_filtered!(self.client.describe_subnets(), filters, next_token, "DescribeSubnets");
        let items = out
            .subnets()
            .iter()
            .map(|s| Subnet {
                id: s.subnet_id().unwrap_or_default().to_owned(),
                vpc_id: s.vpc_id().unwrap_or_default().to_owned(),
                zone: s.availability_zone().unwrap_or_default().to_owned(),
            })
            .collect();
        Ok(Page { items, next_token: out.next_token().map(str::to_owned) })
    }

    async fn describe_impaired(
        &self,
        check: StatusCheck,
        next_token: Option<String>,
    ) -> Result<Page<InstanceStatus>, AwsError> {
        let filter = [Filter::new(check.filter_name(), ["impaired"])];
        let out = send_filtered!(self.client.describe_instance_status(), &filter, next_token, "DescribeInstanceStatus");
        let status = |s: Option<&sdk::InstanceStatusSummary>| s.and_then(|s| s.status()).map(|s| s.as_str().to_owned());
        let items = out
            .instance_statuses()
            .iter()
            .map(|s| InstanceStatus {
                id: s.instance_id().unwrap_or_default().to_owned(),
                system: status(s.system_status()),
                instance: status(s.instance_status()),
            })
            // Filtered again here: an endpoint that ignores the filter answers
            // for every running instance.
            .filter(|s| match check {
                StatusCheck::System => s.system.as_deref() == Some("impaired"),
                StatusCheck::Instance => s.instance.as_deref() == Some("impaired"),
            })
            .collect();
        Ok(Page { items, next_token: out.next_token().map(str::to_owned) })
    }

    async fn describe_nat_gateways(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> Result<Page<NatGateway>, AwsError> {
        let out = self
            .client
            .describe_nat_gateways()
            .set_filter(Some(sdk_filters(filters)))
            .max_results(1000)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeNatGateways", e))?;
        let items = out
            .nat_gateways()
            .iter()
            .map(|g| NatGateway {
                id: g.nat_gateway_id().unwrap_or_default().to_owned(),
                vpc_id: g.vpc_id().unwrap_or_default().to_owned(),
                subnet_id: g.subnet_id().map(str::to_owned),
                state: g.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                tags: tags_from_sdk(g.tags()),
                regional: matches!(g.availability_mode(), Some(sdk::AvailabilityMode::Regional)),
            })
            .collect();
        Ok(Page { items, next_token: out.next_token().map(str::to_owned) })
    }

    async fn set_source_dest_check(&self, instance_id: &str, enabled: bool) -> Result<(), AwsError> {
        self.client
            .modify_instance_attribute()
            .instance_id(instance_id)
            .source_dest_check(sdk::AttributeBooleanValue::builder().value(enabled).build())
            .send()
            .await
            .map_err(|e| sdk_error("ModifyInstanceAttribute", e))?;
        Ok(())
    }

    async fn create_tag(&self, resource_id: &str, key: &str, value: &str) -> Result<(), AwsError> {
        self.client
            .create_tags()
            .resources(resource_id)
            .tags(sdk::Tag::builder().key(key).value(value).build())
            .send()
            .await
            .map_err(|e| sdk_error("CreateTags", e))?;
        Ok(())
    }

    async fn delete_tag(&self, resource_id: &str, key: &str) -> Result<(), AwsError> {
        self.client
            .delete_tags()
            .resources(resource_id)
            .tags(sdk::Tag::builder().key(key).build())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteTags", e))?;
        Ok(())
    }
}

impl Addresses for AwsEc2 {
    async fn describe_addresses(&self) -> Result<Vec<Address>, AwsError> {
        let out = self.client.describe_addresses().send().await.map_err(|e| sdk_error("DescribeAddresses", e))?;
        let some = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(out
            .addresses()
            .iter()
            .map(|a| Address {
                allocation_id: a.allocation_id().unwrap_or_default().to_owned(),
                public_ip: a.public_ip().unwrap_or_default().to_owned(),
                association_id: some(a.association_id()),
                instance_id: some(a.instance_id()),
                network_interface_id: some(a.network_interface_id()),
                private_ip: some(a.private_ip_address()),
                tags: tags_from_sdk(a.tags()),
            })
            .collect())
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        instance_id: &str,
        network_interface_id: Option<&str>,
    ) -> Result<String, AwsError> {
        let req = self.client.associate_address().allocation_id(allocation_id).allow_reassociation(false);
        let req = match network_interface_id {
            Some(eni) => req.network_interface_id(eni),
            None => req.instance_id(instance_id),
        };
        let out = req.send().await.map_err(|e| sdk_error("AssociateAddress", e))?;
        Ok(out.association_id().unwrap_or_default().to_owned())
    }

    async fn disassociate_address(&self, association_id: &str) -> Result<(), AwsError> {
        self.client
            .disassociate_address()
            .association_id(association_id)
            .send()
            .await
            .map_err(|e| sdk_error("DisassociateAddress", e))?;
        Ok(())
    }
}

/// Maps an SDK route table into the domain. Missing lists become empty.
pub fn route_table_from_sdk(table: &sdk::RouteTable) -> RouteTable {
    RouteTable {
        id: table.route_table_id().unwrap_or_default().to_owned(),
        vpc_id: table.vpc_id().unwrap_or_default().to_owned(),
        tags: table
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect(),
        routes: table.routes().iter().filter_map(route_from_sdk).collect(),
        subnet_ids: table.associations().iter().filter_map(|a| a.subnet_id().map(str::to_owned)).collect(),
    }
}

fn tags_from_sdk(tags: &[sdk::Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

fn sdk_filters(filters: &[Filter]) -> Vec<sdk::Filter> {
    filters.iter().map(|f| sdk::Filter::builder().name(&f.name).set_values(Some(f.values.clone())).build()).collect()
}

/// Maps an SDK instance into the domain.
pub fn instance_from_sdk(i: &sdk::Instance) -> Instance {
    let mut enis: Vec<(i32, String)> = i
        .network_interfaces()
        .iter()
        .filter_map(|n| {
            let index = n.attachment().and_then(|a| a.device_index()).unwrap_or(i32::MAX);
            Some((index, n.network_interface_id()?.to_owned()))
        })
        .collect();
    enis.sort();
    Instance {
        id: i.instance_id().unwrap_or_default().to_owned(),
        vpc_id: i.vpc_id().unwrap_or_default().to_owned(),
        state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default(),
        zone: i.placement().and_then(|p| p.availability_zone()).map(str::to_owned),
        tags: tags_from_sdk(i.tags()),
        eni_ids: enis.into_iter().map(|(_, id)| id).collect(),
        private_ip: i.private_ip_address().map(str::to_owned),
        source_dest_check: i.source_dest_check(),
        leaving: None,
    }
}

/// Maps an SDK route into the domain; `None` for a route with no
/// destination we can read (such a route is never touched).
pub fn route_from_sdk(route: &sdk::Route) -> Option<Route> {
    let destination = if let Some(v4) = route.destination_cidr_block() {
        Destination::Cidr(v4.parse().ok()?)
    } else if let Some(v6) = route.destination_ipv6_cidr_block() {
        Destination::Cidr(v6.parse().ok()?)
    } else {
        Destination::PrefixList(route.destination_prefix_list_id()?.into())
    };
    // EC2 lists both the instance and its interface for routes made by
    // instance id; the interface is what CreateRoute accepts for every node.
    let target = [
        route.network_interface_id().map(|id| Target::NetworkInterface(id.into())),
        route.instance_id().map(|id| Target::Instance(id.into())),
        route.nat_gateway_id().map(|id| Target::NatGateway(id.into())),
        route.transit_gateway_id().map(|id| Target::TransitGateway(id.into())),
        route.vpc_peering_connection_id().map(|id| Target::VpcPeeringConnection(id.into())),
        route.egress_only_internet_gateway_id().map(|id| Target::EgressOnlyInternetGateway(id.into())),
        route.local_gateway_id().map(|id| Target::LocalGateway(id.into())),
        route.carrier_gateway_id().map(|id| Target::CarrierGateway(id.into())),
        route.core_network_arn().map(|arn| Target::CoreNetwork(arn.into())),
        route.gateway_id().map(|id| Target::Gateway(id.into())),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or(Target::Unknown);
    let state = match route.state() {
        None | Some(sdk::RouteState::Active) => RouteState::Active,
        Some(_) => RouteState::Blackhole,
    };
    let origin = match route.origin() {
        Some(sdk::RouteOrigin::CreateRoute) => RouteOrigin::CreateRoute,
        Some(sdk::RouteOrigin::CreateRouteTable) => RouteOrigin::CreateRouteTable,
        Some(sdk::RouteOrigin::EnableVgwRoutePropagation) => RouteOrigin::EnableVgwRoutePropagation,
        Some(_) | None => RouteOrigin::Other,
    };
    Some(Route { destination, target, state, origin, instance_id: route.instance_id().map(Into::into) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_routes_map_to_their_interface() {
        let route = sdk::Route::builder()
            .destination_cidr_block("100.96.3.0/24")
            .instance_id("i-0abc")
            .instance_owner_id("123456789012")
            .network_interface_id("eni-0abc")
            .origin(sdk::RouteOrigin::CreateRoute)
            .state(sdk::RouteState::Active)
            .build();
        let mapped = route_from_sdk(&route).unwrap();
        assert_eq!(mapped.target, Target::NetworkInterface("eni-0abc".into()));
        assert_eq!(mapped.destination, Destination::Cidr("100.96.3.0/24".parse().unwrap()));
        assert_eq!(mapped.origin, RouteOrigin::CreateRoute);
    }

    #[test]
    fn sdk_routes_map_destination_target_state_and_origin() {
        let cases = [
            (
                sdk::Route::builder()
                    .destination_cidr_block("10.0.0.0/16")
                    .gateway_id("local")
                    .origin(sdk::RouteOrigin::CreateRouteTable),
                Destination::Cidr("10.0.0.0/16".parse().unwrap()),
                Target::Gateway("local".into()),
                RouteOrigin::CreateRouteTable,
            ),
            (
                sdk::Route::builder()
                    .destination_ipv6_cidr_block("::/0")
                    .egress_only_internet_gateway_id("eigw-1")
                    .origin(sdk::RouteOrigin::CreateRoute),
                Destination::Cidr("::/0".parse().unwrap()),
                Target::EgressOnlyInternetGateway("eigw-1".into()),
                RouteOrigin::CreateRoute,
            ),
            (
                sdk::Route::builder()
                    .destination_prefix_list_id("pl-1")
                    .gateway_id("vgw-1")
                    .origin(sdk::RouteOrigin::EnableVgwRoutePropagation),
                Destination::PrefixList("pl-1".into()),
                Target::Gateway("vgw-1".into()),
                RouteOrigin::EnableVgwRoutePropagation,
            ),
            (
                sdk::Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id("nat-1")
                    .origin(sdk::RouteOrigin::CreateRoute),
                Destination::Cidr("0.0.0.0/0".parse().unwrap()),
                Target::NatGateway("nat-1".into()),
                RouteOrigin::CreateRoute,
            ),
        ];
        for (builder, destination, target, origin) in cases {
            let r = route_from_sdk(&builder.build()).unwrap();
            assert_eq!((r.destination, r.target, r.origin, r.state), (destination, target, origin, RouteState::Active));
        }
        let hole = sdk::Route::builder()
            .destination_cidr_block("100.96.1.0/24")
            .origin(sdk::RouteOrigin::CreateRoute)
            .state(sdk::RouteState::Blackhole)
            .build();
        let r = route_from_sdk(&hole).unwrap();
        assert_eq!((r.target, r.state), (Target::Unknown, RouteState::Blackhole));
        assert_eq!(route_from_sdk(&sdk::Route::builder().build()), None);
    }

    #[test]
    fn error_codes_are_classified() {
        let missing = AwsError::service(
            "ReplaceRoute",
            INVALID_PARAMETER_VALUE,
            "There is no route defined for '100.96.1.0/24' in the route table",
        );
        assert!(missing.is_missing_route());
        assert!(
            !AwsError::service(
                "ReplaceRoute",
                INVALID_PARAMETER_VALUE,
                "Value (x) for parameter instanceId is invalid"
            )
            .is_missing_route()
        );
        assert!(AwsError::service("DeleteRoute", ROUTE_NOT_FOUND, "gone").is_missing_route());
        let throttled = AwsError::service("CreateRoute", "RequestLimitExceeded", "Request limit exceeded.");
        assert!(throttled.is_throttling());
        assert_eq!(throttled.to_string(), "CreateRoute failed with RequestLimitExceeded: Request limit exceeded.");
        assert!(AwsError::service("CreateRoute", "UnauthorizedOperation", "no").hint().contains("IAM"));
    }

    #[tokio::test]
    async fn pages_end_on_a_repeated_token_or_after_the_bound_never_loop() {
        let repeated = all_pages("DescribeRouteTables", |_| async {
            Ok(Page { items: vec![1], next_token: Some("same".to_owned()) })
        })
        .await
        .unwrap_err();
        assert!(repeated.message.contains("\"same\" twice"), "{repeated}");
        let mut n = 0;
        let endless = all_pages("DescribeRouteTables", |_| {
            n += 1;
            let token = format!("t{n}");
            async move { Ok(Page { items: vec![()], next_token: Some(token) }) }
        })
        .await
        .unwrap_err();
        assert!(endless.message.contains("more than 1000 pages"), "{endless}");
        let pages = all_pages("DescribeRouteTables", |token: Option<String>| async move {
            let next = match token.as_deref() {
                None => Some("a".to_owned()),
                Some("a") => Some("b".to_owned()),
                _ => None,
            };
            Ok(Page { items: vec![token], next_token: next })
        })
        .await
        .unwrap();
        assert_eq!(pages, vec![None, Some("a".to_owned()), Some("b".to_owned())]);
    }
}
