//! The Java shim's native methods and the JNI face's exports are the same set: a method
//! declared in `Native.java` without its Rust function fails only at run time, in Tomcat.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_native_method_has_its_jni_function_and_back() {
    let java = read("java-shim/src/main/java/io/msm/Native.java");
    let declared: BTreeSet<String> = java
        .split(" static native ")
        .skip(1)
        .filter_map(|rest| {
            let before_paren = rest.split('(').next()?;
            Some(before_paren.split_whitespace().last()?.to_owned())
        })
        .collect();
    let rust = read("native/ffi/jni/mod.rs");
    let exported: BTreeSet<String> = rust
        .split("fn Java_io_msm_Native_")
        .skip(1)
        .filter_map(|rest| Some(rest.split('<').next()?.to_owned()))
        .collect();
    assert!(declared.len() > 10, "parsed {declared:?}");
    assert_eq!(declared, exported);
}
