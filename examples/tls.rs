//! `make bench`, TLS part: which rustls crypto provider makes the first EC2
//! call of a fresh process fastest.
//!
//! Every sample is a fresh process (this example, re-run as a child), so
//! each first call pays what a Lambda cold start pays: building the TLS
//! configuration (system roots and the provider) and the TCP + TLS handshake.
//! The endpoint is the EC2 emulator on loopback, over HTTPS and over plain
//! HTTP, so that the differences isolate the TLS work:
//!
//! - `plain`: an HTTP-only client (no TLS code at all), HTTP endpoint;
//! - `<provider>/http`: kube-rtsync's HTTPS client, HTTP endpoint: adds
//!   loading the system roots and building the TLS configuration;
//! - `<provider>/https`: the same client, HTTPS endpoint: adds the handshake.
//!
//! Build it optimised: `cargo build --profile bench --example tls`.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use support::emulator::{Emulator, TEST_CA, client_config};

const SAMPLES: usize = 21;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Plain,
    AwsLcHttp,
    AwsLcHttps,
    RingHttp,
    RingHttps,
}

impl Variant {
    const ALL: [Variant; 5] =
        [Variant::Plain, Variant::AwsLcHttp, Variant::AwsLcHttps, Variant::RingHttp, Variant::RingHttps];

    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::AwsLcHttp => "aws-lc/http",
            Variant::AwsLcHttps => "aws-lc/https",
            Variant::RingHttp => "ring/http",
            Variant::RingHttps => "ring/https",
        }
    }

    fn from_name(name: &str) -> Variant {
        Variant::ALL.into_iter().find(|v| v.name() == name).unwrap_or_else(|| panic!("unknown variant {name}"))
    }

    fn https(self) -> bool {
        matches!(self, Variant::AwsLcHttps | Variant::RingHttps)
    }
}

/// One sample, in microseconds: building the client, the first call, and a
/// second call. (The emulator closes each connection after its answer, so
/// the second call makes a new connection too, without the one-time costs.)
#[derive(Clone, Copy, Debug)]
struct Sample {
    build: u64,
    first: u64,
    second: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "child" {
        let sample = child(Variant::from_name(&args[2]), &args[3]);
        println!("{} {} {}", sample.build, sample.first, sample.second);
        return;
    }
    parent();
}

#[tokio::main(flavor = "current_thread")]
async fn child(variant: Variant, endpoint: &str) -> Sample {
    let started = Instant::now();
    let config = match variant {
        Variant::Plain => client_config(endpoint).http_client(aws_smithy_http_client::Builder::new().build_http()),
        Variant::AwsLcHttp | Variant::AwsLcHttps | Variant::RingHttp | Variant::RingHttps => {
            let crypto = match variant {
                Variant::RingHttp | Variant::RingHttps => CryptoMode::Ring,
                _ => CryptoMode::AwsLc,
            };
            let ca =
                std::fs::read(TEST_CA).map(kube_rtsync::aws::sdk::CaBundle::from_pem).expect("the test CA").unwrap();
            client_config(endpoint).http_client(kube_rtsync::aws::sdk::https_client(crypto, Some(ca)))
        }
    };
    // Building the client builds its connector once, to check it: the
    // system roots are loaded and the TLS configuration made here.
    let client = aws_sdk_ec2::Client::from_conf(config.build());
    let build = started.elapsed();
    let call = || async {
        let started = Instant::now();
        client.describe_route_tables().send().await.expect("DescribeRouteTables");
        started.elapsed()
    };
    let first = call().await;
    let second = call().await;
    let us = |d: Duration| d.as_micros() as u64;
    Sample { build: us(build), first: us(first), second: us(second) }
}

fn parent() {
    let plain = Emulator::start();
    let tls = Emulator::start_tls();
    let me = std::env::current_exe().expect("own path");
    let mut samples: Vec<(Variant, Sample)> = Vec::new();
    // Interleaved rounds, so that the machine's noise falls on every variant
    // alike.
    for _ in 0..SAMPLES {
        for variant in Variant::ALL {
            let endpoint = if variant.https() { tls.endpoint() } else { plain.endpoint() };
            let out = Command::new(&me).args(["child", variant.name(), &endpoint]).output().expect("run a sample");
            assert!(out.status.success(), "{}: {}", variant.name(), String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8(out.stdout).unwrap();
            let n: Vec<u64> = text.split_whitespace().map(|v| v.parse().unwrap()).collect();
            samples.push((variant, Sample { build: n[0], first: n[1], second: n[2] }));
        }
    }

    println!("TLS set-up: the first DescribeRouteTables of a fresh process, median of {SAMPLES} processes each");
    println!("(loopback EC2 emulator; the emulator's own time is in every figure, so compare differences)");
    println!();
    println!("{:<14} {:>12} {:>12} {:>12}", "variant", "new client", "first call", "second call");
    let mut first = std::collections::HashMap::new();
    for variant in Variant::ALL {
        let of =
            |f: fn(&Sample) -> u64| median(samples.iter().filter(|(v, _)| *v == variant).map(|(_, s)| f(s)).collect());
        let (build, first_call, second) = (of(|s| s.build), of(|s| s.first), of(|s| s.second));
        first.insert(variant.name(), (build, first_call, second));
        println!("{:<14} {:>9} µs {:>9} µs {:>9} µs", variant.name(), build, first_call, second);
    }
    println!();
    let of = |name: String| first[name.as_str()];
    let plain = first["plain"];
    for provider in ["aws-lc", "ring"] {
        let (http, https) = (of(format!("{provider}/http")), of(format!("{provider}/https")));
        let d = |a: u64, b: u64| a as i64 - b as i64;
        let (build, first_call, second) = (d(http.0, plain.0), d(https.1, http.1), d(https.2, http.2));
        println!(
            "{provider:<7} TLS configuration (roots, provider): {build:>6} µs at client build; \
             first handshake {first_call:>6} µs, on a second connection {second:>6} µs; \
             cold client + first call = {:.2} x plain HTTP",
            (https.0 + https.1) as f64 / (plain.0 + plain.1) as f64
        );
    }
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
