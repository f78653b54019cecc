//! The egress job against a real EC2 API: the moto emulator in server
//! mode, through the real `aws-sdk-ec2` adapter. NAT instances are stopped
//! and started, a NAT gateway deleted, and the tables must follow.

use std::collections::BTreeMap;

use crate::support::emulator::{Emulator, client_config};
use crate::support::proxy::{Behaviour, Proxy, Refusal};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, ResourceType, Tag, TagSpecification};
use kube_rtsync::aws::ec2::AwsEc2;
use kube_rtsync::jobs::egress::config::Config;
use kube_rtsync::jobs::egress::report::{Outcome, Report};
use kube_rtsync::jobs::egress::{Error, Reconciler};
use kube_rtsync::shared::config::WriteRate;
use kube_rtsync::shared::event::Trigger;
use kube_rtsync::shared::limiter::WriteLimiter;

const T0: u64 = 1_800_000_000;

fn enrolled() -> Tag {
    Tag::builder().key("aws-nat-router/id").value("squid").build()
}

fn tagged(kind: ResourceType, tags: &[Tag]) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags.to_vec())).build()
}

struct World {
    emulator: Emulator,
    client: Client,
    vpc_id: String,
    /// zone letter -> NAT instance id and its ENI
    nat: BTreeMap<char, (String, String)>,
    gateway: String,
    /// a, b, c: enrolled per zone; n: enrolled, zone a, no default route;
    /// i: enrolled, through the internet gateway; u: not enrolled.
    tables: BTreeMap<char, String>,
}

async fn world() -> World {
    let emulator = Emulator::start();
    let client = emulator.client();
    let vpc = client.create_vpc().cidr_block("10.1.0.0/16").send().await.unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    // One subnet per table (a subnet has one route table), each in its table's
    // zone.
    let mut subnets = BTreeMap::new();
    for (n, (name, zone)) in
        [('a', 'a'), ('b', 'b'), ('c', 'c'), ('n', 'a'), ('i', 'b'), ('u', 'a')].into_iter().enumerate()
    {
        let s = client
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.1.{n}.0/24"))
            .availability_zone(format!("us-east-1{zone}"))
            .send()
            .await
            .unwrap();
        subnets.insert(name, s.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned());
    }
    let mut nat = BTreeMap::new();
    for zone in ['a', 'b'] {
        let run = client
            .run_instances()
            .image_id("ami-0abcdef1234567890")
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnets[&zone])
            .tag_specifications(tagged(ResourceType::Instance, &[enrolled()]))
            .send()
            .await
            .unwrap();
        let instance = &run.instances()[0];
        let eni = instance.network_interfaces()[0].network_interface_id().unwrap().to_owned();
        nat.insert(zone, (instance.instance_id().unwrap().to_owned(), eni));
    }
    let eip = client.allocate_address().domain(DomainType::Vpc).send().await.unwrap();
    let gw = client
        .create_nat_gateway()
        .subnet_id(&subnets[&'c'])
        .allocation_id(eip.allocation_id().unwrap())
        .tag_specifications(tagged(ResourceType::Natgateway, &[enrolled()]))
        .send()
        .await
        .unwrap();
    let gateway = gw.nat_gateway().and_then(|g| g.nat_gateway_id()).unwrap().to_owned();
    let igw = client.create_internet_gateway().send().await.unwrap();
    let igw = igw.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap().to_owned();
    client.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc_id).send().await.unwrap();

    let mut tables = BTreeMap::new();
    for (name, enrol) in [('a', true), ('b', true), ('c', true), ('n', true), ('i', true), ('u', false)] {
        let tags = if enrol { vec![enrolled()] } else { vec![Tag::builder().key("Name").value("other").build()] };
        let t = client
            .create_route_table()
            .vpc_id(&vpc_id)
            .tag_specifications(tagged(ResourceType::RouteTable, &tags))
            .send()
            .await
            .unwrap();
        let id = t.route_table().and_then(|t| t.route_table_id()).unwrap().to_owned();
        client.associate_route_table().route_table_id(&id).subnet_id(&subnets[&name]).send().await.unwrap();
        let route = client.create_route().route_table_id(&id).destination_cidr_block("0.0.0.0/0");
        let route = match name {
            'a' | 'u' => Some(route.network_interface_id(&nat[&'a'].1)),
            'b' => Some(route.network_interface_id(&nat[&'b'].1)),
            'c' => Some(route.nat_gateway_id(&gateway)),
            'i' => Some(route.gateway_id(&igw)),
            _ => None,
        };
        if let Some(route) = route {
            route.send().await.unwrap();
        }
        tables.insert(name, id);
    }
    World { emulator, client, vpc_id, nat, gateway, tables }
}

impl World {
    async fn run(&self, extra: &[(&str, &str)], now: u64) -> Result<Report, Error> {
        self.run_via(&self.client, extra, now).await
    }

    /// A run whose EC2 calls go through `client` (a proxy, for example).
    async fn run_via(&self, client: &Client, extra: &[(&str, &str)], now: u64) -> Result<Report, Error> {
        let mut vars: BTreeMap<String, String> = BTreeMap::from([("VPC_ID".into(), self.vpc_id.clone())]);
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let ec2 = AwsEc2::new(client.clone());
        let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
        let reconciler = Reconciler { ec2: &ec2, config: &config, limiter: &limiter, deadline: None };
        let report = reconciler.reconcile(vec![Trigger::Manual { command: "sync".into() }], now).await?;
        match report.outcome {
            Outcome::Incomplete => Err(Error::Incomplete(Box::new(report))),
            _ => Ok(report),
        }
    }

    /// What each table's default route names now.
    async fn defaults(&self) -> BTreeMap<char, String> {
        let mut out = BTreeMap::new();
        for (name, id) in &self.tables {
            let t = self.client.describe_route_tables().route_table_ids(id).send().await.unwrap();
            let route = t.route_tables()[0].routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
            let target = route.and_then(|r| {
                r.network_interface_id()
                    .or(r.nat_gateway_id())
                    .or(r.gateway_id())
                    .or(r.instance_id())
                    .map(str::to_owned)
            });
            out.insert(*name, target.unwrap_or_else(|| "-".into()));
        }
        out
    }

    async fn source_dest_check(&self, zone: char) -> Option<bool> {
        let out = self
            .client
            .describe_instance_attribute()
            .instance_id(&self.nat[&zone].0)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::SourceDestCheck)
            .send()
            .await
            .unwrap();
        out.source_dest_check().and_then(|v| v.value())
    }
}

#[tokio::test]
async fn nats_that_stop_start_and_vanish_move_the_tables_and_nothing_else() {
    crate::require_emulator!();
    let w = world().await;
    let eni = |zone: char| w.nat[&zone].1.clone();
    let config = [("EGRESS_FAILBACK_SECONDS", "0")];
    let before = w.defaults().await;

    // First run: the table without a default route gets its zone's NAT;
    // the source/destination check comes off the NAT instances.
    let report = w.run(&config, T0).await.unwrap();
    let now = w.defaults().await;
    assert_eq!(now[&'n'], eni('a'));
    for table in ['a', 'b', 'c', 'i', 'u'] {
        assert_eq!(now[&table], before[&table], "table {table} changed");
    }
    assert_eq!((w.source_dest_check('a').await, w.source_dest_check('b').await), (Some(false), Some(false)));
    assert_eq!(report.totals.tables_left_alone, 1, "the table through the internet gateway");
    assert_eq!(w.run(&config, T0).await.unwrap().outcome, Outcome::InSync, "a second run writes nothing");

    // NAT a stops: both zone-a tables leave it, one to each other NAT.
    w.client.stop_instances().instance_ids(&w.nat[&'a'].0).send().await.unwrap();
    let report = w.run(&config, T0 + 60).await.unwrap();
    assert_eq!(report.totals.tables_failed_over, 2);
    let now = w.defaults().await;
    let mut moved = vec![now[&'a'].clone(), now[&'n'].clone()];
    moved.sort();
    let mut expected = vec![eni('b'), w.gateway.clone()];
    expected.sort();
    assert_eq!(moved, expected);
    assert_eq!(now[&'u'], eni('a'), "an unenrolled table is never written");

    // NAT a is back: with no hold, both tables return at once.
    w.client.start_instances().instance_ids(&w.nat[&'a'].0).send().await.unwrap();
    let report = w.run(&config, T0 + 120).await.unwrap();
    assert_eq!(report.totals.tables_failed_back, 2);
    let now = w.defaults().await;
    assert_eq!((now[&'a'].clone(), now[&'n'].clone()), (eni('a'), eni('a')));

    // The NAT gateway is deleted: zone c's table goes to the least loaded NAT
    // (b).
    w.client.delete_nat_gateway().nat_gateway_id(&w.gateway).send().await.unwrap();
    w.run(&config, T0 + 180).await.unwrap();
    let now = w.defaults().await;
    assert_eq!(now[&'c'], eni('b'));
    assert_eq!(now[&'i'], before[&'i'], "the table through the internet gateway is left alone");
}

#[tokio::test]
async fn a_held_failback_keeps_its_clock_on_the_table() {
    crate::require_emulator!();
    let w = world().await;
    w.client.stop_instances().instance_ids(&w.nat[&'b'].0).send().await.unwrap();
    w.run(&[], T0).await.unwrap();
    assert_ne!(w.defaults().await[&'b'], w.nat[&'b'].1);
    w.client.start_instances().instance_ids(&w.nat[&'b'].0).send().await.unwrap();
    w.run(&[], T0 + 60).await.unwrap();
    let t = w.client.describe_route_tables().route_table_ids(&w.tables[&'b']).send().await.unwrap();
    let clock =
        t.route_tables()[0].tags().iter().find(|t| t.key() == Some("kube-rtsync/egress-healthy-since")).cloned();
    assert_eq!(clock.and_then(|t| t.value().map(str::to_owned)), Some((T0 + 60).to_string()));
    assert_ne!(w.defaults().await[&'b'], w.nat[&'b'].1, "held for 300 s by default");
    w.run(&[], T0 + 360).await.unwrap();
    assert_eq!(w.defaults().await[&'b'], w.nat[&'b'].1);
}

#[tokio::test]
async fn a_bad_egress_variable_fails_init_naming_it() {
    crate::require_emulator!();
    let env = vec![
        ("_HANDLER", "egress".to_owned()),
        ("VPC_ID", "vpc-0123456789abcdef0".to_owned()),
        ("EGRESS_DESTINATION", "0.0.0.0/33".to_owned()),
    ];
    let log = crate::support::failed_init_log(std::path::Path::new(env!("CARGO_BIN_EXE_kube-rtsync")), "egress", &env);
    assert!(log.contains("EGRESS_DESTINATION") && log.contains("is not a CIDR"), "{log}");
}

#[tokio::test]
async fn tables_that_must_choose_spread_over_two_nats_of_their_zone() {
    crate::require_emulator!();
    let emulator = Emulator::start();
    let client = emulator.client();
    let vpc = crate::support::seed::egress_vpc(&client, 8, &[("us-east-1a", 4), ("us-east-1a", 0)]).await;
    let ids: Vec<String> = vpc.tables.iter().map(|(_, id, _)| id.clone()).collect();
    for id in &ids {
        client.delete_route().route_table_id(id).destination_cidr_block("0.0.0.0/0").send().await.unwrap();
    }
    let vars: BTreeMap<String, String> = BTreeMap::from([("VPC_ID".into(), vpc.vpc_id.clone())]);
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let ec2 = AwsEc2::new(client.clone());
    let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
    let reconciler = Reconciler { ec2: &ec2, config: &config, limiter: &limiter, deadline: None };
    reconciler.reconcile(vec![Trigger::Manual { command: "sync".into() }], T0).await.unwrap();
    let routes = crate::support::seed::default_routes(&client, &ids).await;
    let on = |eni: &str| routes.values().filter(|t| *t == eni).count();
    assert_eq!((on(&vpc.nats[0].2), on(&vpc.nats[1].2)), (2, 2), "{routes:?}");
}

type CreateRoute = aws_sdk_ec2::operation::create_route::builders::CreateRouteFluentBuilder;

/// An enrolled table of its own subnet in zone a, its default route through
/// `route`'s target; returns its id.
async fn zone_a_table(w: &World, cidr: &str, route: impl FnOnce(CreateRoute) -> CreateRoute) -> String {
    let subnet = w
        .client
        .create_subnet()
        .vpc_id(&w.vpc_id)
        .cidr_block(cidr)
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned();
    let t = w
        .client
        .create_route_table()
        .vpc_id(&w.vpc_id)
        .tag_specifications(tagged(ResourceType::RouteTable, &[enrolled()]))
        .send()
        .await
        .unwrap();
    let id = t.route_table().and_then(|t| t.route_table_id()).unwrap().to_owned();
    w.client.associate_route_table().route_table_id(&id).subnet_id(&subnet).send().await.unwrap();
    route(w.client.create_route().route_table_id(&id).destination_cidr_block("0.0.0.0/0")).send().await.unwrap();
    id
}

async fn default_of(w: &World, table: &str) -> String {
    let t = w.client.describe_route_tables().route_table_ids(table).send().await.unwrap();
    let route = t.route_tables()[0].routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0")).unwrap();
    route.network_interface_id().or(route.nat_gateway_id()).or(route.instance_id()).unwrap_or("-").to_owned()
}

#[tokio::test]
async fn a_refused_source_dest_fix_and_next_hops_that_are_not_enrolled_nats_keep_the_tables_off_them() {
    crate::require_emulator!();
    let w = world().await;
    // An appliance (a firewall instance, not enrolled) and another router
    // id's NAT gateway, each the next hop of an enrolled table of zone a.
    let subnet_c = w.client.describe_nat_gateways().nat_gateway_ids(&w.gateway).send().await.unwrap();
    let subnet_c = subnet_c.nat_gateways()[0].subnet_id().unwrap().to_owned();
    let appliance = crate::support::seed::instance(&w.client, &subnet_c, &[("Name", "firewall")]).await;
    let described = w.client.describe_instances().instance_ids(&appliance).send().await.unwrap();
    let appliance_eni =
        described.reservations()[0].instances()[0].network_interfaces()[0].network_interface_id().unwrap().to_owned();
    let eip = w.client.allocate_address().domain(DomainType::Vpc).send().await.unwrap();
    let other_router = Tag::builder().key("aws-nat-router/id").value("another-router").build();
    let other = w
        .client
        .create_nat_gateway()
        .subnet_id(&subnet_c)
        .allocation_id(eip.allocation_id().unwrap())
        .tag_specifications(tagged(ResourceType::Natgateway, &[other_router]))
        .send()
        .await
        .unwrap();
    let other = other.nat_gateway().and_then(|g| g.nat_gateway_id()).unwrap().to_owned();
    let through_appliance = zone_a_table(&w, "10.1.20.0/24", |r| r.network_interface_id(&appliance_eni)).await;
    let through_other = zone_a_table(&w, "10.1.21.0/24", |r| r.nat_gateway_id(&other)).await;

    // Zone a's NAT stops; both NAT instances still have EC2's default
    // source/destination check on, and the fix is refused (an SCP).
    w.client.stop_instances().instance_ids(&w.nat[&'a'].0).send().await.unwrap();
    let refusal =
        Refusal { action: "ModifyInstanceAttribute", times: usize::MAX, status: 403, code: "UnauthorizedOperation" };
    let proxy = Proxy::start(&w.emulator.endpoint(), Behaviour { refuse: Some(refusal), ..Behaviour::default() });
    let proxied = Client::from_conf(client_config(&proxy.endpoint).build());
    let err =
        w.run_via(&proxied, &[("EGRESS_FAILBACK_SECONDS", "0")], T0).await.expect_err("the refused fix is a failure");
    let Error::Incomplete(report) = &err else { panic!("{err}") };
    assert_eq!(w.source_dest_check('b').await, Some(true), "the refusal held");
    let now = w.defaults().await;
    for table in ['a', 'n', 'b'] {
        assert_eq!(now[&table], w.gateway, "table {table} must go to the one NAT that forwards");
    }
    assert_eq!(default_of(&w, &through_appliance).await, appliance_eni, "the appliance's table was moved");
    assert_eq!(default_of(&w, &through_other).await, other, "another router's table was moved");
    // The appliance, the other router's gateway and the internet gateway.
    assert_eq!(report.totals.tables_left_alone, 3, "{}", report.plan);

    // Once the fix is allowed, zone b comes home; the others stay.
    w.run(&[("EGRESS_FAILBACK_SECONDS", "0")], T0 + 60).await.unwrap();
    assert_eq!(w.source_dest_check('b').await, Some(false));
    assert_eq!(w.defaults().await[&'b'], w.nat[&'b'].1);
    assert_eq!(default_of(&w, &through_appliance).await, appliance_eni);
    assert_eq!(default_of(&w, &through_other).await, other);
}

#[tokio::test]
async fn a_failover_publishes_one_change_event_per_table_moved_through_a_rule_on_the_bus() {
    crate::require_emulator!();
    let w = world().await;
    let queue = crate::support::events::EventsQueue::create(&w.emulator, "egress-changes").await;
    let vars = BTreeMap::from([("VPC_ID".to_string(), w.vpc_id.clone())]);
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let first = w.run(&[], T0).await.unwrap();
    // The first run gives table n its route and turns the source/destination
    // checks off: one event each.
    crate::support::events::publish(&w.emulator, "egress", &config, &first).await;
    // moto starts both NAT instances with the check on: two fixes, and table
    // n's new route.
    assert_eq!(first.plan.source_dest_fixes.len(), 2);
    assert_eq!(queue.receive().len(), 3);

    w.client.stop_instances().instance_ids(&w.nat[&'a'].0).send().await.unwrap();
    let report = w.run(&[], T0 + 60).await.unwrap();
    assert_eq!(report.totals.tables_failed_over, 2);
    let published = crate::support::events::publish(&w.emulator, "egress", &config, &report).await;
    assert_eq!((published.events, published.failed), (2, 0));
    let events = queue.receive();
    assert_eq!(events.len(), 2, "{events:#?}");
    let mut moved: Vec<String> = Vec::new();
    for event in &events {
        assert_eq!(event["detail-type"], "egress change");
        let detail = &event["detail"];
        assert_eq!((detail["job"].as_str(), detail["vpcId"].as_str()), (Some("egress"), Some(w.vpc_id.as_str())));
        assert_eq!(detail["from"], w.nat[&'a'].0.as_str());
        assert_eq!(detail["reason"], "fail over: state stopped");
        assert!(detail["change"].as_str().unwrap().ends_with(": fail over"), "{detail}");
        let table = detail["resource"].as_str().unwrap().to_owned();
        assert_eq!(
            event["resources"],
            serde_json::json!([format!("arn:aws:ec2:us-east-1:123456789012:route-table/{table}")])
        );
        moved.push(table);
    }
    moved.sort();
    let mut expected = vec![w.tables[&'a'].clone(), w.tables[&'n'].clone()];
    expected.sort();
    assert_eq!(moved, expected);
}
