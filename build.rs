//! Records the git commit the binary is built from (`kube-rtsync
//! --version`, every EMF record): `KUBE_RTSYNC_COMMIT`, or `unknown` outside
//! a git checkout (a source tarball).

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = std::env::var("KUBE_RTSYNC_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!("cargo:rustc-env=KUBE_RTSYNC_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
    println!("cargo:rerun-if-env-changed=KUBE_RTSYNC_COMMIT");
    // A new commit moves the branch's ref (or HEAD itself, when detached).
    let git = Path::new(".git");
    if git.is_dir() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
            && let Some(reference) = head.trim().strip_prefix("ref: ")
        {
            println!("cargo:rerun-if-changed=.git/{reference}");
            println!("cargo:rerun-if-changed=.git/packed-refs");
        }
    }
}
