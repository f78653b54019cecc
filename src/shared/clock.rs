//! The wall clock, read in one place. Planners take time as an argument;
//! what reads the clock (the runner, the deadline, the EMF timestamp) reads
//! it here, and clippy's `disallowed-methods` (clippy.toml) refuses a read
//! anywhere else.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 before it, which no machine is).
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Seconds since the Unix epoch: the time planners are given.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree_and_are_of_this_century() {
        let (ms, s) = (now_ms(), now_secs());
        assert!(ms > 1_700_000_000_000, "{ms}");
        assert!(s.abs_diff(ms / 1000) <= 1);
    }
}
