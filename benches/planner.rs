//! The planner on large inputs: 200 tables x 1,000 routes (EC2's quota
//! maximum) and 25 tables x 45 routes (a large cluster on default quotas).
//! `cargo bench --bench planner` (part of `make bench`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ipnet::IpNet;
use kube_rtsync::aws::ec2::model::{Destination, Route, RouteOrigin, RouteTable, Target};
use kube_rtsync::jobs::routes::model::ManagedCidrs;
use kube_rtsync::jobs::routes::plan;

fn pod(n: usize) -> Destination {
    // /24s inside 100.96.0.0/11: 8,192 of them.
    Destination::Cidr(format!("100.{}.{}.0/24", 96 + n / 256, n % 256).parse::<IpNet>().unwrap())
}

fn node(n: usize) -> Target {
    Target::Instance(format!("i-{n:017x}").into())
}

/// A source with `routes` pod routes, and `tables` targets that mirror it
/// except for a realistic drift: every 20th route missing, every 31st
/// pointing at an old node, three stale routes, and the NAT, local and VPN
/// routes every private table has.
fn world(tables: usize, routes: usize) -> (RouteTable, Vec<RouteTable>) {
    let unmanaged = || {
        vec![
            Route {
                origin: RouteOrigin::CreateRouteTable,
                ..Route::active("10.0.0.0/16".parse::<IpNet>().unwrap(), Target::Gateway("local".into()))
            },
            Route::active("0.0.0.0/0".parse::<IpNet>().unwrap(), Target::NatGateway("nat-0a".into())),
            Route {
                origin: RouteOrigin::EnableVgwRoutePropagation,
                ..Route::active("192.168.0.0/16".parse::<IpNet>().unwrap(), Target::Gateway("vgw-0a".into()))
            },
        ]
    };
    let mut source = RouteTable::new("rtb-0c", "vpc-0a");
    source.routes = unmanaged();
    source.routes.extend((0..routes).map(|n| Route::active(pod(n), node(n))));
    let targets = (0..tables)
        .map(|t| {
            let mut table = RouteTable::new(format!("rtb-{t:017x}"), "vpc-0a");
            table.routes = unmanaged();
            for n in 0..routes {
                if n % 20 == 7 {
                    continue;
                }
                let target = if n % 31 == 3 { node(n + 100_000) } else { node(n) };
                table.routes.push(Route::active(pod(n), target));
            }
            table.routes.extend((0..3).map(|k| Route::active(pod(routes + k), node(routes + k))));
            table
        })
        .collect();
    (source, targets)
}

fn planner(c: &mut Criterion) {
    let managed = ManagedCidrs::new(vec!["100.96.0.0/11".parse().unwrap()]);
    let mut group = c.benchmark_group("plan");
    for (tables, routes) in [(25, 45), (200, 1000)] {
        // Leave room for the unmanaged and stale routes under EC2's maximum.
        let routes = routes.min(990);
        let (source, targets) = world(tables, routes);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{tables}x{routes}")),
            &(source, targets),
            |b, (s, t)| {
                b.iter(|| {
                    let desired = plan::desired_routes(black_box(s), &managed);
                    black_box(plan::plan(&desired, black_box(t), &managed))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, planner);
criterion_main!(benches);
