//! Fuzz target: see `msm_fuzz::memcached_reply`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msm_fuzz::memcached_reply(data);
});
