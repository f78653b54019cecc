//! Any bytes as an invocation event: decoding gives triggers or a typed
//! error, never a panic; accepted events re-encode their triggers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(triggers) = kube_rtsync::shared::event::decode_bytes(data) {
        assert!(!triggers.is_empty());
        let _ = serde_json::to_string(&triggers).expect("triggers serialize");
    }
});
