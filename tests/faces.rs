//! The two faces are at parity: every operation the JNI face offers, the C face offers too (C
//! hosts get the same lifecycle as Tomcat), and each face's declared operations exist. The
//! operations are read from the sources: the native methods of `Native.java`, the JNI exports,
//! and the functions of the generated header.

use std::collections::BTreeSet;

/// Each JNI operation and the C functions that offer it.
const OPERATIONS: &[(&str, &[&str])] = &[
    (
        "create",
        &[
            "msm_config_new",
            "msm_config_set",
            "msm_config_set_context",
            "msm_manager_new",
        ],
    ),
    ("destroy", &["msm_manager_free"]),
    (
        "begin",
        &[
            "msm_request_begin",
            "msm_request_get_info",
            "msm_request_session_id",
        ],
    ),
    ("lookup", &["msm_request_lookup"]),
    ("load", &["msm_load"]),
    ("end", &["msm_request_end", "msm_request_free"]),
    ("newSessionId", &["msm_session_id_new"]),
    ("ending", &["msm_session_ending"]),
    ("ended", &["msm_session_ended"]),
    ("expiredSessions", &["msm_manager_poll_expired"]),
    ("idChanged", &["msm_session_id_changed"]),
    ("flush", &["msm_manager_flush"]),
    ("storesAttribute", &["msm_manager_stores_attribute"]),
    ("sticky", &["msm_manager_get_info"]),
    ("enabled", &["msm_manager_get_info"]),
    ("stats", &["msm_stats"]),
    ("setMemcachedNodes", &["msm_manager_set_nodes"]),
    ("selftestPanic", &["msm_selftest_panic"]),
    (
        "broadcastPollInterval",
        &["msm_manager_broadcast_poll_interval_ms"],
    ),
    ("publish", &["msm_manager_publish"]),
    (
        "broadcastEvents",
        &[
            "msm_manager_poll_event",
            "msm_event_get_info",
            "msm_event_free",
        ],
    ),
];

/// JNI operations with no C counterpart, and why.
const JAVA_ONLY: &[(&str, &str)] = &[
    (
        "installLogging",
        "forwards the core's records into the JVM's logging; C hosts read msm_stats",
    ),
    ("drainLogs", "the Java side of installLogging"),
    (
        "broadcastValues",
        "tells the shim whether to serialize values; a C host set the attribute itself, and the core drops values without it",
    ),
];

/// C functions whose operation the JNI face does not offer yet, and why: each moves into
/// `OPERATIONS` when the Java shim gets it.
const C_AHEAD: &[(&str, &str)] = &[];

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The words that follow `marker` up to `end`, in `text`.
fn names_after(text: &str, marker: &str, end: char) -> BTreeSet<String> {
    text.split(marker)
        .skip(1)
        .filter_map(|rest| Some(rest.split(end).next()?.trim().to_owned()))
        .collect()
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
    let exported = names_after(
        &read("native/ffi/jni/mod.rs"),
        "fn Java_io_msm_Native_",
        '<',
    );
    assert!(declared.len() > 10, "parsed {declared:?}");
    assert_eq!(declared, exported);
}

#[test]
fn the_c_face_offers_every_operation_of_the_jni_face() {
    let jni = names_after(
        &read("native/ffi/jni/mod.rs"),
        "fn Java_io_msm_Native_",
        '<',
    );
    let header = read("include/msm.h");
    let c: BTreeSet<String> = header
        .lines()
        .filter(|line| !line.starts_with("//") && line.contains("msm_") && line.contains('('))
        .filter_map(|line| {
            let name = line.split('(').next()?.split_whitespace().last()?;
            let name = name.trim_start_matches('*');
            name.starts_with("msm_").then(|| name.to_owned())
        })
        .collect();
    assert!(c.len() > 20, "parsed {c:?}");
    let covered: BTreeSet<String> = OPERATIONS
        .iter()
        .map(|(op, _)| (*op).to_owned())
        .chain(JAVA_ONLY.iter().map(|(op, _)| (*op).to_owned()))
        .collect();
    assert_eq!(jni, covered, "every JNI operation is listed above, once");
    for (op, functions) in OPERATIONS {
        for function in *functions {
            assert!(
                c.contains(*function),
                "`{op}` has no `{function}` in the C face"
            );
        }
    }
    for (function, why) in C_AHEAD {
        assert!(
            c.contains(*function),
            "`{function}` ({why}) is not in the header"
        );
        assert!(
            OPERATIONS.iter().all(|(_, fs)| !fs.contains(function)),
            "`{function}` has its JNI operation now: drop it from C_AHEAD"
        );
    }
}
