//! kube-rtsync's integration tests, in one crate so that the SDK links once:
//! a module per job (handler tests against the in-memory fakes, properties,
//! emulator tests against moto and the compiled binary), the configuration
//! contract, and the shared support (fakes' builders, the emulator, the
//! Runtime API stand-in, the test proxy, the seeds).
//!
//! The emulator tests need moto (`make venv` installs it into `.venv/`);
//! without it they are skipped with a message, and the rest still run.

mod changes;
mod contract;
mod egress;
mod eip;
mod routes;
mod support;
mod targets;
