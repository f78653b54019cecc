//! The eip job: handler tests on the fakes, planner and apply properties,
//! emulator tests.

mod emulator;
mod handler;
mod properties;
