//! `make bench` (memory): the routes function's peak RSS at EC2's maxima,
//! 200 route tables in the VPC with 1,000 routes each, served by a canned
//! EC2 endpoint on loopback (the emulator would take hours to hold that
//! many routes). The compiled binary runs one scheduled reconcile through
//! the Lambda Runtime API, as Lambda runs it; its VmHWM is read afterwards.
//!
//! Usage: memory <path to the kube-rtsync binary>

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::LambdaProcess;
use support::proxy::read_request;
use support::runtime_api::{Answer, RuntimeApi};

const VPC: &str = "vpc-0b0000000000000b";
const CLUSTER: &str = "memory.example.com";
/// EC2's maxima: route tables per VPC, and routes per table at the highest
/// quota an account can be given.
const TABLES: usize = 200;
const ROUTES: usize = 1_000;

/// What the canned endpoint holds: every table has the local route; the
/// cluster's table (the first) has `ROUTES - 1` pod routes, and the others
/// have the first `mirrored` of them.
#[derive(Clone, Copy)]
struct Shape {
    mirrored: usize,
}

fn pod_cidr(n: usize) -> String {
    format!("100.{}.{}.0/24", 96 + n / 256, n % 256)
}

fn table_xml(out: &mut String, n: usize, shape: Shape) {
    let pods = if n == 0 { ROUTES - 1 } else { shape.mirrored };
    let _ = write!(
        out,
        "<item><routeTableId>rtb-{n:017x}</routeTableId><vpcId>{VPC}</vpcId><ownerId>123456789012</ownerId><routeSet>\
         <item><destinationCidrBlock>10.0.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state><origin>CreateRouteTable</origin></item>"
    );
    for p in 0..pods {
        let _ = write!(
            out,
            "<item><destinationCidrBlock>{}</destinationCidrBlock><instanceId>i-{p:017x}</instanceId>\
             <instanceOwnerId>123456789012</instanceOwnerId><networkInterfaceId>eni-{p:017x}</networkInterfaceId>\
             <state>active</state><origin>CreateRoute</origin></item>",
            pod_cidr(p)
        );
    }
    out.push_str("</routeSet><associationSet/><propagatingVgwSet/><tagSet>");
    if n == 0 {
        let _ = write!(
            out,
            "<item><key>Name</key><value>{CLUSTER}</value></item><item><key>KubernetesCluster</key><value>{CLUSTER}</value></item>"
        );
    } else {
        let _ = write!(out, "<item><key>Name</key><value>private_{n}</value></item>");
    }
    out.push_str("</tagSet></item>");
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether table `n` passes the request's filters (the ones kube-rtsync
/// sends: vpc-id, route-table-id, tag:Name and tag-key, with EC2's wildcards).
fn matches(n: usize, params: &[(String, String)]) -> bool {
    let name = if n == 0 { CLUSTER.to_owned() } else { format!("private_{n}") };
    let mut filters: std::collections::BTreeMap<String, (String, Vec<String>)> = Default::default();
    for (k, v) in params {
        if let Some(rest) = k.strip_prefix("Filter.") {
            let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
            let entry = filters.entry(index.to_owned()).or_default();
            if field == "Name" {
                entry.0 = v.clone();
            } else {
                entry.1.push(v.clone());
            }
        }
    }
    filters.values().all(|(filter, values)| {
        values.iter().any(|value| match filter.as_str() {
            "vpc-id" => value == VPC,
            "route-table-id" => *value == format!("rtb-{n:017x}"),
            "tag:Name" => kube_rtsync::fake::ec2::glob(value, &name),
            "tag-key" => {
                let keys: &[&str] = if n == 0 { &["Name", "KubernetesCluster"] } else { &["Name"] };
                keys.iter().any(|key| kube_rtsync::fake::ec2::glob(value, key))
            }
            "tag:KubernetesCluster" => n == 0 && value == CLUSTER,
            _ => false,
        })
    })
}

fn answer(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(stream, "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n", body.len())?;
    stream.write_all(body.as_bytes())
}

fn serve(stream: TcpStream, shape: Shape) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let params: Vec<(String, String)> =
            body.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
        let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let result = match get("Action").as_deref() {
            Some("DescribeRouteTables") => {
                let page: usize = get("MaxResults").and_then(|v| v.parse().ok()).unwrap_or(100);
                let start: usize = get("NextToken").and_then(|v| v.parse().ok()).unwrap_or(0);
                let selected: Vec<usize> = (0..TABLES).filter(|n| matches(*n, &params)).collect();
                let mut xml = String::from(
                    "<DescribeRouteTablesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>00000000-0000-4000-8000-000000000000</requestId><routeTableSet>",
                );
                for n in selected.iter().skip(start).take(page) {
                    table_xml(&mut xml, *n, shape);
                }
                xml.push_str("</routeTableSet>");
                if start + page < selected.len() {
                    let _ = write!(xml, "<nextToken>{}</nextToken>", start + page);
                }
                xml.push_str("</DescribeRouteTablesResponse>");
                answer(&mut writer, "200 OK", &xml)
            }
            other => {
                let xml = format!(
                    "<Response><Errors><Error><Code>UnsupportedOperation</Code><Message>the canned endpoint answers DescribeRouteTables only, not {other:?}</Message></Error></Errors><RequestID>0</RequestID></Response>"
                );
                answer(&mut writer, "400 Bad Request", &xml)
            }
        };
        if result.is_err() {
            return;
        }
    }
}

fn start(shape: Shape) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, shape));
        }
    });
    endpoint
}

/// One scheduled reconcile: (peak RSS in KiB, the report's size in bytes,
/// the report, its wall time).
fn run(binary: &Path, shape: Shape, extra: &[(&'static str, &str)]) -> (u64, usize, serde_json::Value, Duration) {
    let endpoint = start(shape);
    let event =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/eventbridge-scheduled.json")).unwrap();
    let api = RuntimeApi::start(vec![event]);
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("VPC_ID", VPC.into()),
        ("KUBE_CLUSTER_NAME", CLUSTER.into()),
        ("ROUTE_TABLE_LIMIT", "1000".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let started = Instant::now();
    let lambda = LambdaProcess::spawn(binary, &api.address, &env, std::process::Stdio::null());
    let (_, answer) = api.answer(Duration::from_secs(600));
    let elapsed = started.elapsed();
    let report = match answer {
        Answer::Response(report) => report,
        other => panic!("expected a report, got {other:?}"),
    };
    let peak = lambda.peak_rss_kib().expect("VmHWM");
    (peak, report.to_string().len(), report, elapsed)
}

fn main() {
    let binary: PathBuf =
        std::env::args_os().nth(1).map(Into::into).unwrap_or_else(|| "target/release/kube-rtsync".into());
    assert!(binary.exists(), "{} does not exist: build it first (make bench does)", binary.display());
    println!("7. Memory at EC2's maxima: {TABLES} route tables of {ROUTES} routes, one scheduled reconcile");
    let (peak, size, report, elapsed) = run(&binary, Shape { mirrored: ROUTES - 1 }, &[]);
    assert_eq!(report["outcome"], "in_sync", "{report}");
    println!(
        "   in sync ({} managed routes, 199 targets): peak RSS {:.1} MiB, report {size} bytes, {:.1} s",
        report["managed_routes"],
        peak as f64 / 1024.0,
        elapsed.as_secs_f64()
    );
    let (peak, size, report, elapsed) = run(&binary, Shape { mirrored: 0 }, &[("DRY_RUN", "true")]);
    assert_eq!(report["outcome"], "dry_run", "{}", &report.to_string()[..500]);
    println!(
        "   every target empty, DRY_RUN ({} creates planned): peak RSS {:.1} MiB, report {size} bytes, {:.1} s",
        report["totals"]["created"],
        peak as f64 / 1024.0,
        elapsed.as_secs_f64()
    );
}
