//! Fuzz target: see `msm_fuzz::envelope`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msm_fuzz::envelope(data);
});
