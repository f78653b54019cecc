//! The `kube-rtsync` binary: wiring only. Under AWS Lambda (when
//! `AWS_LAMBDA_RUNTIME_API` is set) it serves the job its handler name
//! picks; elsewhere it is the command line.
// The SDK and runtime futures nest deeply; the layout query needs room.
#![recursion_limit = "256"]

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread exists: it sets a variable of the process. Only
    // under Lambda, where init time is billed and the platform is known: a
    // person's command line keeps the platform loader's own choice.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        // SAFETY: no other thread exists yet.
        unsafe { kube_rtsync::aws::sdk::read_roots_from_the_platform_bundle() };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(err) => {
            eprintln!("kube-rtsync: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        kube_rtsync::shared::logging::init_cli();
        return kube_rtsync::cli::run().await;
    }
    kube_rtsync::shared::logging::init();
    match kube_rtsync::lambda::serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kube-rtsync: {err}");
            ExitCode::FAILURE
        }
    }
}
