//! Fuzz target: see `msm_fuzz::validity`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msm_fuzz::validity(data);
});
