//! The targets job: handler tests on the fakes, planner properties, emulator
//! tests.

mod emulator;
mod handler;
mod properties;
