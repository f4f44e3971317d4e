//! The servers under test: one memcached and one Tomcat per mode, children of this process on
//! free loopback ports, stopped when dropped.

use std::path::Path;

use crate::common::tomcat::{Tomcat, http_get};
use crate::common::{Memcached, node_list};
use crate::mode::Mode;
use crate::progress::Progress;

/// One memcached shared by every msm Tomcat, and the Tomcats.
pub struct Fleet {
    /// The memcached server.
    pub memcached: Memcached,
    tomcats: Vec<(Mode, Tomcat)>,
}

impl Fleet {
    /// Starts memcached, then a Tomcat for each of `modes`, each JVM with `jvm` flags, the
    /// `@baseline` ones from `baseline_jar`; panics when one does not serve.
    pub fn start(
        modes: &[Mode],
        jvm: &[String],
        baseline_jar: Option<&Path>,
        progress: &Progress,
    ) -> Fleet {
        let memcached = Memcached::start();
        progress.say(format_args!(
            "memcached pid {} on {}",
            memcached.pid(),
            memcached.address()
        ));
        let tomcats = start_tomcats(modes, &node_list(&[&memcached]), jvm, baseline_jar);
        for (mode, tomcat) in &tomcats {
            check_route(*mode, tomcat);
            progress.say(format_args!(
                "Tomcat {} pid {} on 127.0.0.1:{}",
                mode.name(),
                tomcat.pid(),
                tomcat.port
            ));
        }
        Fleet { memcached, tomcats }
    }

    /// The Tomcat of `mode`.
    pub fn tomcat(&self, mode: Mode) -> &Tomcat {
        self.tomcats
            .iter()
            .find_map(|(m, tomcat)| (*m == mode).then_some(tomcat))
            .unwrap_or_else(|| panic!("no Tomcat runs {}", mode.name()))
    }
}

/// A Tomcat for each of `modes` over memcached `nodes`, all started at once since each JVM takes
/// seconds to start.
fn start_tomcats(
    modes: &[Mode],
    nodes: &str,
    jvm: &[String],
    baseline_jar: Option<&Path>,
) -> Vec<(Mode, Tomcat)> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = modes
            .iter()
            .map(|&mode| {
                let options = mode.options(nodes, jvm, baseline_jar);
                (mode, scope.spawn(move || Tomcat::start(&options)))
            })
            .collect();
        starting
            .into_iter()
            .map(|(mode, thread)| {
                let tomcat = thread
                    .join()
                    .unwrap_or_else(|_| panic!("Tomcat {} did not start", mode.name()));
                (mode, tomcat)
            })
            .collect()
    })
}

/// Panics unless the Tomcat answering on its port is the one of `mode`: its route is in the
/// answer.
fn check_route(mode: Mode, tomcat: &Tomcat) {
    let answer = http_get(tomcat.port, "/read", None);
    assert_eq!(
        answer.field("tomcat"),
        Some(mode.route().as_str()),
        "127.0.0.1:{} is not Tomcat {}: {}",
        tomcat.port,
        mode.name(),
        answer.body
    );
}
