//! Fuzz target: see `msm_fuzz::session_id`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msm_fuzz::session_id(data);
});
