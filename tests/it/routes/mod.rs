//! The routes job: handler tests on the fake EC2, planner properties,
//! reliability under faults, and the emulator tests of the real adapter and the
//! compiled binary.

mod emulator;
mod handler;
mod properties;
mod reliability;
