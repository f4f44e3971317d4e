//! The demo, the project's main command, runs its whole scenario and proves each step.

use std::process::Command;

#[test]
fn the_demo_walks_through_both_failovers() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{root}/scripts/demo.sh"))
        // cargo's build directories must not shadow the library inside the jar.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("cannot run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed:\n{stdout}\n{stderr}"
    );
    for step in [
        "counter=3",
        "Tomcat b loaded the session from memcached: counter 4",
        "Counter 6: nothing lost",
        "TomcatFailovers=1",
        "MemcachedFailovers=1",
        "demo complete",
    ] {
        assert!(stdout.contains(step), "missing `{step}` in:\n{stdout}");
    }
}
