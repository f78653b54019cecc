//! The machinery every job shares. A job never reaches into another job's
//! room; what two jobs need lives here.

pub mod apply;
pub mod changes;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod job;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod nodes;
pub mod report;
pub mod selector;
pub mod tags;
