//! Seeds the EC2 emulator with a sample kubenet VPC, and reads tables back
//! through the plain SDK (independently of kube-rtsync's adapter).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, Filter, ResourceType, Tag, TagSpecification};

pub const CLUSTER: &str = "k8s.example.com";
pub const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// How the cluster's table is tagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterTag {
    /// `KubernetesCluster=<name>`
    Legacy,
    /// `kubernetes.io/cluster/<name>=owned`
    Owned,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub instance_id: String,
    pub eni_id: String,
}

/// What was seeded.
#[derive(Clone, Debug)]
pub struct SampleVpc {
    pub vpc_id: String,
    pub other_vpc_id: String,
    pub source: String,
    /// The private tables, one per AZ, tagged `Name=private_<az>`.
    pub private: Vec<String>,
    pub public: String,
    /// A `Name=private_other` table in the other VPC.
    pub other: String,
    pub nodes: Vec<Node>,
    /// A second interface of node 1 (a multi-ENI node).
    pub extra_eni: String,
    pub vgw: String,
}

impl SampleVpc {
    /// Every table id with a readable name, for printing.
    pub fn names(&self) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        names.insert(self.source.clone(), "cluster (source)".to_owned());
        for (id, az) in self.private.iter().zip(AZS) {
            names.insert(id.clone(), format!("private_{az}"));
        }
        names.insert(self.public.clone(), "public".to_owned());
        names.insert(self.other.clone(), "private_other (other VPC)".to_owned());
        names
    }
}

fn tags(resource: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (k, v) in pairs {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

async fn table(client: &Client, vpc: &str, pairs: &[(&str, &str)]) -> String {
    client
        .create_route_table()
        .vpc_id(vpc)
        .tag_specifications(tags(ResourceType::RouteTable, pairs))
        .send()
        .await
        .expect("CreateRouteTable")
        .route_table()
        .and_then(|t| t.route_table_id())
        .expect("route table id")
        .to_owned()
}

/// A route target for [`route`].
pub enum To<'a> {
    Instance(&'a str),
    Eni(&'a str),
    Gateway(&'a str),
    Nat(&'a str),
    Peering(&'a str),
    EgressOnly(&'a str),
}

/// Creates a route (IPv6 when the destination has a colon).
pub async fn route(client: &Client, table: &str, destination: &str, to: To<'_>) {
    let mut req = client.create_route().route_table_id(table);
    req = if destination.contains(':') {
        req.destination_ipv6_cidr_block(destination)
    } else {
        req.destination_cidr_block(destination)
    };
    req = match to {
        To::Instance(id) => req.instance_id(id),
        To::Eni(id) => req.network_interface_id(id),
        To::Gateway(id) => req.gateway_id(id),
        To::Nat(id) => req.nat_gateway_id(id),
        To::Peering(id) => req.vpc_peering_connection_id(id),
        To::EgressOnly(id) => req.egress_only_internet_gateway_id(id),
    };
    req.send().await.unwrap_or_else(|e| panic!("CreateRoute {destination} in {table}: {e:?}"));
}

/// Seeds: a VPC with three AZ subnets, four nodes, an internet gateway, a
/// NAT gateway per AZ, a VPN gateway, an egress-only gateway and a peering;
/// the cluster's table with pod routes by instance and by ENI; three
/// private tables out of sync (stale, wrong, missing routes) beside their
/// NAT, VPN, IPv6 and peering routes; a public table; and a table named
/// like a private one in another VPC.
pub async fn seed(client: &Client, tag: ClusterTag) -> SampleVpc {
    let vpc = client.create_vpc().cidr_block("10.0.0.0/16").send().await.expect("CreateVpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let other = client.create_vpc().cidr_block("10.200.0.0/16").send().await.expect("CreateVpc");
    let other_vpc_id = other.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();

    let mut subnets = Vec::new();
    for (n, az) in AZS.iter().enumerate() {
        let s = client
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.0.{}.0/24", n * 32))
            .availability_zone(*az)
            .send()
            .await
            .expect("CreateSubnet");
        subnets.push(s.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned());
    }

    let igw = client.create_internet_gateway().send().await.expect("CreateInternetGateway");
    let igw = igw.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap().to_owned();
    client
        .attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("AttachInternetGateway");

    let mut nats = Vec::new();
    for subnet in &subnets {
        let eip = client.allocate_address().domain(DomainType::Vpc).send().await.expect("AllocateAddress");
        let nat = client
            .create_nat_gateway()
            .subnet_id(subnet)
            .allocation_id(eip.allocation_id().unwrap())
            .send()
            .await
            .expect("CreateNatGateway");
        nats.push(nat.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap().to_owned());
    }

    let vgw = client
        .create_vpn_gateway()
        .r#type(aws_sdk_ec2::types::GatewayType::Ipsec1)
        .send()
        .await
        .expect("CreateVpnGateway");
    let vgw = vgw.vpn_gateway().and_then(|g| g.vpn_gateway_id()).unwrap().to_owned();
    client.attach_vpn_gateway().vpn_gateway_id(&vgw).vpc_id(&vpc_id).send().await.expect("AttachVpnGateway");
    let eigw = client
        .create_egress_only_internet_gateway()
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("CreateEgressOnlyInternetGateway");
    let eigw =
        eigw.egress_only_internet_gateway().and_then(|g| g.egress_only_internet_gateway_id()).unwrap().to_owned();
    let pcx = client
        .create_vpc_peering_connection()
        .vpc_id(&vpc_id)
        .peer_vpc_id(&other_vpc_id)
        .send()
        .await
        .expect("CreateVpcPeeringConnection");
    let pcx = pcx.vpc_peering_connection().and_then(|p| p.vpc_peering_connection_id()).unwrap().to_owned();

    let mut nodes = Vec::new();
    for n in 0..4 {
        let run = client
            .run_instances()
            .image_id("ami-0abcdef1234567890")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnets[n % subnets.len()])
            .tag_specifications(tags(ResourceType::Instance, &[("Name", &format!("node-{n}.{CLUSTER}"))]))
            .send()
            .await
            .expect("RunInstances");
        let instance = &run.instances()[0];
        nodes.push(Node {
            instance_id: instance.instance_id().unwrap().to_owned(),
            eni_id: instance.network_interfaces()[0].network_interface_id().unwrap_or_default().to_owned(),
        });
    }
    let extra = client.create_network_interface().subnet_id(&subnets[1]).send().await.expect("CreateNetworkInterface");
    let extra_eni = extra.network_interface().and_then(|e| e.network_interface_id()).unwrap().to_owned();

    let cluster_tag = match tag {
        ClusterTag::Legacy => ("KubernetesCluster".to_owned(), CLUSTER.to_owned()),
        ClusterTag::Owned => (format!("kubernetes.io/cluster/{CLUSTER}"), "owned".to_owned()),
    };
    let source = table(client, &vpc_id, &[("Name", CLUSTER), (&cluster_tag.0, &cluster_tag.1)]).await;
    route(client, &source, "0.0.0.0/0", To::Gateway(&igw)).await;
    route(client, &source, "100.96.1.0/24", To::Instance(&nodes[0].instance_id)).await;
    route(client, &source, "100.96.2.0/24", To::Eni(&nodes[1].eni_id)).await;
    route(client, &source, "100.96.3.0/24", To::Instance(&nodes[2].instance_id)).await;
    route(client, &source, "100.96.4.0/24", To::Eni(&extra_eni)).await;
    route(client, &source, "10.200.0.0/16", To::Peering(&pcx)).await;

    let mut private = Vec::new();
    for (az, nat) in AZS.iter().zip(&nats) {
        let id = table(client, &vpc_id, &[("Name", &format!("private_{az}"))]).await;
        route(client, &id, "0.0.0.0/0", To::Nat(nat)).await;
        route(client, &id, "192.168.0.0/16", To::Gateway(&vgw)).await;
        route(client, &id, "::/0", To::EgressOnly(&eigw)).await;
        route(client, &id, "10.200.0.0/16", To::Peering(&pcx)).await;
        private.push(id);
    }
    // a: a wrong target and a stale route; b: one route already right;
    // c: a wrong target. Everything else is missing.
    route(client, &private[0], "100.96.2.0/24", To::Instance(&nodes[3].instance_id)).await;
    route(client, &private[0], "100.96.9.0/24", To::Instance(&nodes[3].instance_id)).await;
    route(client, &private[1], "100.96.1.0/24", To::Instance(&nodes[0].instance_id)).await;
    route(client, &private[2], "100.96.3.0/24", To::Instance(&nodes[1].instance_id)).await;

    let public = table(client, &vpc_id, &[("Name", "public")]).await;
    route(client, &public, "0.0.0.0/0", To::Gateway(&igw)).await;
    route(client, &public, "100.96.9.0/24", To::Instance(&nodes[3].instance_id)).await;

    let other_igw = client.create_internet_gateway().send().await.expect("CreateInternetGateway");
    let other_igw = other_igw.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap().to_owned();
    client
        .attach_internet_gateway()
        .internet_gateway_id(&other_igw)
        .vpc_id(&other_vpc_id)
        .send()
        .await
        .expect("AttachInternetGateway");
    let other = table(client, &other_vpc_id, &[("Name", "private_other")]).await;
    route(client, &other, "100.96.5.0/24", To::Gateway(&other_igw)).await;

    SampleVpc { vpc_id, other_vpc_id, source, private, public, other, nodes, extra_eni, vgw }
}

/// One route as the plain SDK reports it: (destination, target, origin, state).
pub type RouteRow = (String, String, String, String);

/// Every table of these VPCs, read with the plain SDK: id -> routes.
pub async fn snapshot(client: &Client, vpc_ids: &[&str]) -> BTreeMap<String, BTreeSet<RouteRow>> {
    let out = client
        .describe_route_tables()
        .filters(
            Filter::builder().name("vpc-id").set_values(Some(vpc_ids.iter().map(|s| s.to_string()).collect())).build(),
        )
        .send()
        .await
        .expect("DescribeRouteTables");
    out.route_tables()
        .iter()
        .map(|t| {
            let routes = t
                .routes()
                .iter()
                .map(|r| {
                    let dest = r
                        .destination_cidr_block()
                        .or(r.destination_ipv6_cidr_block())
                        .or(r.destination_prefix_list_id())
                        .unwrap_or("?")
                        .to_owned();
                    let target = [
                        r.network_interface_id(),
                        r.instance_id(),
                        r.nat_gateway_id(),
                        r.gateway_id(),
                        r.vpc_peering_connection_id(),
                        r.egress_only_internet_gateway_id(),
                        r.transit_gateway_id(),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("+");
                    let origin = r.origin().map(|o| o.as_str().to_owned()).unwrap_or_default();
                    let state = r.state().map(|s| s.as_str().to_owned()).unwrap_or_default();
                    (dest, target, origin, state)
                })
                .collect();
            (t.route_table_id().unwrap_or_default().to_owned(), routes)
        })
        .collect()
}

/// A VPC for the egress job: one enrolled NAT instance per zone, and
/// enrolled private tables (zone-tagged) on their zone's NAT.
#[derive(Clone, Debug)]
pub struct EgressVpc {
    pub vpc_id: String,
    /// (zone, instance id, its primary ENI), in the order of `zones`.
    pub nats: Vec<(String, String, String)>,
    /// (zone, table id, table name)
    pub tables: Vec<(String, String, String)>,
}

/// A VPC with one subnet: (VPC id, subnet id).
pub async fn vpc_with_subnet(client: &Client, vpc_cidr: &str, subnet_cidr: &str) -> (String, String) {
    let vpc = client.create_vpc().cidr_block(vpc_cidr).send().await.expect("CreateVpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let subnet_id = subnet(client, &vpc_id, subnet_cidr).await;
    (vpc_id, subnet_id)
}

pub async fn subnet(client: &Client, vpc_id: &str, cidr: &str) -> String {
    let out = client.create_subnet().vpc_id(vpc_id).cidr_block(cidr).send().await.expect("CreateSubnet");
    out.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned()
}

/// Runs one instance in `subnet` with these tags (none: untagged); returns its
/// id.
pub async fn instance(client: &Client, subnet: &str, pairs: &[(&str, &str)]) -> String {
    let mut run = client.run_instances().image_id("ami-0abcdef1234567890").min_count(1).max_count(1).subnet_id(subnet);
    if !pairs.is_empty() {
        run = run.tag_specifications(tags(ResourceType::Instance, pairs));
    }
    let out = run.send().await.expect("RunInstances");
    out.instances()[0].instance_id().unwrap().to_owned()
}

/// `zones` gives, per NAT, its zone and the number of tables on it (a zone
/// may appear twice: two NATs in one zone).
pub async fn egress_vpc(client: &Client, cidr_octet: u8, zones: &[(&str, usize)]) -> EgressVpc {
    let vpc = client.create_vpc().cidr_block(format!("10.{cidr_octet}.0.0/16")).send().await.expect("CreateVpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let mut nats = Vec::new();
    let mut tables = Vec::new();
    for (n, (zone, count)) in zones.iter().enumerate() {
        let subnet = client
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.{cidr_octet}.{n}.0/24"))
            .availability_zone(*zone)
            .send()
            .await
            .expect("CreateSubnet");
        let run = client
            .run_instances()
            .image_id("ami-0abcdef1234567890")
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet.subnet().and_then(|s| s.subnet_id()).unwrap())
            .tag_specifications(tags(ResourceType::Instance, &[("aws-nat-router/id", "squid"), ("Name", "nat")]))
            .send()
            .await
            .expect("RunInstances");
        let i = &run.instances()[0];
        let eni = i.network_interfaces()[0].network_interface_id().unwrap().to_owned();
        nats.push((zone.to_string(), i.instance_id().unwrap().to_owned(), eni.clone()));
        for t in 0..*count {
            let name = format!("private_{zone}_{n}{t}");
            let spec = tags(
                ResourceType::RouteTable,
                &[("Name", &name), ("aws-nat-router/id", "squid"), ("aws-nat-router/zone", zone)],
            );
            let out = client.create_route_table().vpc_id(&vpc_id).tag_specifications(spec).send().await.unwrap();
            let table = out.route_table().and_then(|t| t.route_table_id()).unwrap().to_owned();
            client
                .create_route()
                .route_table_id(&table)
                .destination_cidr_block("0.0.0.0/0")
                .network_interface_id(&eni)
                .send()
                .await
                .expect("CreateRoute");
            tables.push((zone.to_string(), table, name));
        }
    }
    EgressVpc { vpc_id, nats, tables }
}

/// Each table's default route target (ENI, NAT gateway or gateway id).
pub async fn default_routes(client: &Client, tables: &[String]) -> BTreeMap<String, String> {
    let out = client.describe_route_tables().set_route_table_ids(Some(tables.to_vec())).send().await.unwrap();
    out.route_tables()
        .iter()
        .map(|t| {
            let target = t
                .routes()
                .iter()
                .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
                .and_then(|r| r.network_interface_id().or(r.nat_gateway_id()).or(r.gateway_id()).or(r.instance_id()))
                .unwrap_or("-");
            (t.route_table_id().unwrap().to_owned(), target.to_owned())
        })
        .collect()
}

/// A VPC for the targets job: `nodes` running instances tagged
/// `role=node`, and one TCP instance target group per port, empty.
#[derive(Clone, Debug)]
pub struct TargetsVpc {
    pub vpc_id: String,
    pub nodes: Vec<String>,
    pub arns: Vec<String>,
}

pub async fn targets_vpc(
    client: &Client,
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    cidr_octet: u8,
    nodes: usize,
    ports: &[i32],
) -> TargetsVpc {
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
    let (vpc_id, subnet) =
        vpc_with_subnet(client, &format!("10.{cidr_octet}.0.0/16"), &format!("10.{cidr_octet}.0.0/20")).await;
    let run = client
        .run_instances()
        .image_id("ami-0abcdef1234567890")
        .min_count(nodes as i32)
        .max_count(nodes as i32)
        .subnet_id(&subnet)
        .tag_specifications(tags(ResourceType::Instance, &[("role", "node")]))
        .send()
        .await
        .expect("RunInstances");
    let nodes = run.instances().iter().map(|i| i.instance_id().unwrap().to_owned()).collect();
    let mut arns = Vec::new();
    for port in ports {
        let out = elb
            .create_target_group()
            .name(format!("nodes-{port}"))
            .protocol(ProtocolEnum::Tcp)
            .port(*port)
            .vpc_id(&vpc_id)
            .target_type(TargetTypeEnum::Instance)
            .send()
            .await
            .expect("CreateTargetGroup");
        arns.push(out.target_groups()[0].target_group_arn().unwrap().to_owned());
    }
    TargetsVpc { vpc_id, nodes, arns }
}

/// The instance ids registered in a target group, sorted.
pub async fn registered(elb: &aws_sdk_elasticloadbalancingv2::Client, arn: &str) -> Vec<String> {
    let out = elb.describe_target_health().target_group_arn(arn).send().await.expect("DescribeTargetHealth");
    let mut ids: Vec<String> =
        out.target_health_descriptions().iter().filter_map(|d| d.target()?.id().map(str::to_owned)).collect();
    ids.sort();
    ids
}

/// The eip job's world: `nodes` edge nodes (`role=edge`), `pool` Elastic
/// IPs tagged `pool=edge` and one outside the pool, a hosted zone for
/// [`EIP_SUFFIX`] and the binding table [`EIP_TABLE`].
#[derive(Clone, Debug)]
pub struct EipVpc {
    pub vpc_id: String,
    pub subnet: String,
    pub zone_id: String,
    pub nodes: Vec<String>,
}

pub const EIP_SUFFIX: &str = "nodes.example.com";
pub const EIP_TABLE: &str = "kube-rtsync-eip";

pub async fn edge_node(client: &Client, subnet: &str) -> String {
    instance(client, subnet, &[("role", "edge")]).await
}

pub async fn eip_vpc(
    ec2: &Client,
    route53: &aws_sdk_route53::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    cidr_octet: u8,
    nodes: usize,
    pool: usize,
) -> EipVpc {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let (vpc_id, subnet) =
        vpc_with_subnet(ec2, &format!("10.{cidr_octet}.0.0/16"), &format!("10.{cidr_octet}.0.0/24")).await;
    let mut ids = Vec::new();
    for _ in 0..nodes {
        ids.push(edge_node(ec2, &subnet).await);
    }
    for _ in 0..pool {
        ec2.allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tags(ResourceType::ElasticIp, &[("pool", "edge")]))
            .send()
            .await
            .expect("AllocateAddress");
    }
    ec2.allocate_address().domain(DomainType::Vpc).send().await.expect("AllocateAddress");
    let zone = route53
        .create_hosted_zone()
        .name(EIP_SUFFIX)
        .caller_reference(format!("kube-rtsync-{cidr_octet}"))
        .send()
        .await
        .expect("CreateHostedZone");
    let zone_id = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned();
    let key = KeySchemaElement::builder().attribute_name("PublicIp").key_type(KeyType::Hash).build().unwrap();
    let attribute = AttributeDefinition::builder()
        .attribute_name("PublicIp")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap();
    dynamodb
        .create_table()
        .table_name(EIP_TABLE)
        .key_schema(key)
        .attribute_definitions(attribute)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable");
    EipVpc { vpc_id, subnet, zone_id, nodes: ids }
}

/// instance -> the `pool=edge` address it holds (an address associated by
/// interface shows no instance in the emulator: found through its interface).
pub async fn held_addresses(client: &Client) -> BTreeMap<String, String> {
    let instances = client.describe_instances().send().await.expect("DescribeInstances");
    let owner: BTreeMap<String, String> = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| {
            let id = i.instance_id().unwrap_or_default().to_owned();
            i.network_interfaces().iter().filter_map(move |n| Some((n.network_interface_id()?.to_owned(), id.clone())))
        })
        .collect();
    let out = client.describe_addresses().send().await.expect("DescribeAddresses");
    out.addresses()
        .iter()
        .filter(|a| a.tags().iter().any(|t| t.key() == Some("pool")))
        .filter_map(|a| {
            let holder = a
                .instance_id()
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .or_else(|| owner.get(a.network_interface_id().filter(|n| !n.is_empty())?).cloned())?;
            Some((holder, a.public_ip()?.to_owned()))
        })
        .collect()
}

/// name -> value of the zone's A records.
pub async fn a_records(route53: &aws_sdk_route53::Client, zone_id: &str) -> BTreeMap<String, String> {
    let out = route53.list_resource_record_sets().hosted_zone_id(zone_id).send().await.expect("ListResourceRecordSets");
    out.resource_record_sets()
        .iter()
        .filter(|r| r.r#type().as_str() == "A")
        .map(|r| (r.name().trim_end_matches('.').to_owned(), r.resource_records()[0].value().to_owned()))
        .collect()
}

/// The binding table's items, as JSON lines.
pub async fn binding_items(dynamodb: &aws_sdk_dynamodb::Client) -> Vec<String> {
    let out = dynamodb.scan().table_name(EIP_TABLE).send().await.expect("Scan");
    let mut items: Vec<String> = out
        .items()
        .iter()
        .filter_map(kube_rtsync::aws::dynamodb::binding_from_item)
        .map(|b| serde_json::to_string(&b).unwrap())
        .collect();
    items.sort();
    items
}
