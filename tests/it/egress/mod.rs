//! The egress job: handler tests on the fake EC2, planner properties, emulator
//! tests.

mod emulator;
mod handler;
mod properties;
