//! Generates the C header from `native/ffi/c.rs`.
//!
//! The header is written to `OUT_DIR`; a unit test compares it with the committed
//! `include/msm.h`, so a stale header fails the test command. `MSM_UPDATE_HEADER=1 cargo build`
//! refreshes the committed copy after a deliberate change to the C API.

use std::env;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("msm.h");
    println!("cargo:rerun-if-changed=native/ffi/c.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MSM_UPDATE_HEADER");
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("native/ffi/c.rs"))
        .generate()
        .expect("cannot generate the C header")
        .write_to_file(&out);
    if env::var_os("MSM_UPDATE_HEADER").is_some() {
        std::fs::copy(&out, root.join("include/msm.h")).expect("cannot update include/msm.h");
    }
}
