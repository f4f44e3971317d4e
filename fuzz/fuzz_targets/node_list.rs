//! Fuzz target: see `msm_fuzz::node_list`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msm_fuzz::node_list(data);
});
