//! What the benchmark needs installed and built, checked before anything starts so that one
//! message names everything missing.

use std::path::Path;

use crate::common::tomcat::{Variant, built_jar};
use crate::wrk;

/// A file the benchmark runs, and the Debian package that installs it.
const INSTALLED: [(&str, &str); 3] = [
    (wrk::PROGRAM, "wrk"),
    ("/usr/bin/memcached", "memcached"),
    ("/usr/bin/java", "default-jdk-headless"),
];

/// Jars of `scripts/build-jar.sh` the Tomcats run.
const BUILT: [&str; 2] = ["msm-tomcat10.jar", "msm-demo-tomcat10.jar"];

/// Panics naming the install command when a package is missing, and the build command when a
/// jar is.
pub fn check() {
    let missing: Vec<&str> = INSTALLED
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    let missing = missing.join(" ");
    assert!(
        missing.is_empty(),
        "missing: {missing}; install them with: apt-get install -y {missing}"
    );
    for jar in BUILT {
        built_jar(jar);
    }
    Variant::Tomcat10.classpath();
}
