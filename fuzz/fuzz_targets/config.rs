//! Fuzz target: see `msm_fuzz::config`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msm_fuzz::config(data);
});
