//! What the benchmark needs installed, built and fetched, checked before anything starts so that
//! one message names everything missing and the commands that provide it.

use std::path::Path;

use crate::mode::{MSM_232_DIR, MSM_232_FETCH, MSM_232_JARS};
use crate::settings::Settings;
use crate::wrk;

/// A file the benchmark runs, and the Debian package that installs it.
const INSTALLED: [(&str, &str); 3] = [
    (wrk::PROGRAM, "wrk"),
    ("/usr/bin/memcached", "memcached"),
    ("/usr/bin/java", "default-jdk-headless"),
];

/// Maven, which fetches the original msm's jars, and its Debian package.
const MAVEN: (&str, &str) = ("/usr/bin/mvn", "maven");

/// An error naming everything the modes of `settings` need and do not have: programs with the
/// command that installs them, this build's jars and Tomcats with `scripts/build-jar.sh`, the
/// original msm's jars with the Maven command that fetches them.
pub fn check(settings: &Settings) -> Result<(), String> {
    let needs_msm_232 = settings.modes.iter().any(|mode| mode.manager.is_msm_232());
    let mut installed = INSTALLED.to_vec();
    if needs_msm_232 {
        installed.push(MAVEN);
    }
    let packages: Vec<&str> = installed
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    let mut missing = Vec::new();
    if !packages.is_empty() {
        let packages = packages.join(" ");
        missing.push(format!(
            "missing: {packages}; install them with: apt-get install -y {packages}"
        ));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut built = Vec::new();
    for mode in &settings.modes {
        let jar = mode.line.jar();
        for file in [format!("msm-{jar}.jar"), format!("msm-demo-{jar}.jar")] {
            let path = root.join("target/java").join(file);
            if !path.is_file() {
                built.push(path);
            }
        }
        let tomcat = root
            .join("target/java")
            .join(format!("tomcat-{}", mode.line.line()));
        if !tomcat.is_dir() {
            built.push(tomcat);
        }
    }
    built.sort();
    built.dedup();
    if !built.is_empty() {
        let paths: Vec<String> = built.iter().map(|p| p.display().to_string()).collect();
        missing.push(format!(
            "missing: {}; build them with: bash scripts/build-jar.sh",
            paths.join(" ")
        ));
    }
    if needs_msm_232 {
        let dir = root.join(MSM_232_DIR);
        let absent: Vec<&str> = MSM_232_JARS
            .into_iter()
            .filter(|jar| !dir.join(jar).is_file())
            .collect();
        if !absent.is_empty() {
            missing.push(format!(
                "missing in {MSM_232_DIR}: {} (memcached-session-manager 2.3.2, which the msm-* \
                 modes run); fetch them from Maven Central with: {MSM_232_FETCH}",
                absent.join(" ")
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}
