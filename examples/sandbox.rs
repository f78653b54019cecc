//! `make sandbox`: a local emulator seeded with the sample kubenet VPC, kept
//! running for a session by hand (`make watch`, `make invoke`, the command
//! line). It prints the variables a shell needs to point kube-rtsync at it,
//! then waits until it is stopped (Ctrl-C stops the emulator too).

#[path = "../tests/it/support/mod.rs"]
mod support;

use support::emulator::Emulator;
use support::seed::{self, CLUSTER, ClusterTag};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emulator = Emulator::start();
    let client = emulator.client();
    let vpc = seed::seed(&client, ClusterTag::Legacy).await;
    let mut env = emulator.env();
    env.push(("VPC_ID", vpc.vpc_id.clone()));
    env.push(("KUBE_CLUSTER_NAME", CLUSTER.to_owned()));
    println!("# The sample VPC is seeded: {} (cluster {CLUSTER}), three private tables out of sync.", vpc.vpc_id);
    println!(
        "# In each other shell, export these, then `make watch` in one and `make invoke EVENT=sns-launch` in another:"
    );
    for (name, value) in &env {
        println!("export {name}={value}");
    }
    println!("# Stop with Ctrl-C (the emulator, in the same process group, stops with it).");
    let _keep = emulator;
    loop {
        std::thread::park();
    }
}
