//! kube-rtsync keeps the networking around a self-managed Kubernetes cluster on
//! AWS right as nodes come and go. One binary, several jobs, one shape: trigger
//! -> observe -> pure plan -> apply -> report.
//!
//! The tree says where things live:
//! - [`jobs`]: one folder per job (its configuration, model, observe, plan,
//!   apply and report); [`jobs::JobName`] picks one by the handler name, and
//!   every job implements [`shared::job::Job`].
//! - [`shared`]: what every job uses: configuration helpers and the shared
//!   variables, trigger decoding, the write limiter, the apply engine, the
//!   report envelope, EMF metrics, logging, cluster tags.
//! - [`aws`]: the doors to AWS: one narrow trait per service with its SDK
//!   adapter, the shared error type, and the one HTTPS client.
//! - `fake` (feature `fakes`): in-memory services for tests and benchmarks.
//! - [`lambda`] and [`cli`]: the two ways the binary runs.

pub mod aws;
pub mod cli;
#[cfg(feature = "fakes")]
pub mod fake;
pub mod jobs;
pub mod lambda;
pub mod shared;

/// The version this binary reports: the crate's, and the git commit it was
/// built from (`unknown` outside a git checkout).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("KUBE_RTSYNC_COMMIT"));
