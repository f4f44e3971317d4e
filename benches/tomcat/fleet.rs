//! The servers under test: the memcached nodes and one Tomcat per mode, children of this process
//! on free loopback ports, stopped when dropped.

use std::path::Path;

use crate::common::tomcat::{Tomcat, http_get};
use crate::common::{Memcached, node_list};
use crate::counters::Counters;
use crate::mode::Mode;
use crate::progress::Progress;

/// memcached's memory (`-m`, MiB): enough for every session of a long run (some hundred
/// thousand, a second copy of each for non-sticky modes) with none evicted.
const MEMCACHED_MIB: &str = "1024";

/// The memcached nodes shared by every Tomcat that uses memcached, and the Tomcats.
pub struct Fleet {
    /// The memcached nodes: n1, n2, ...
    pub memcached: Vec<Memcached>,
    tomcats: Vec<(Mode, Tomcat)>,
}

/// What a Tomcat printed at its start about its session manager (`EmbeddedTomcat`'s `MANAGER`
/// and `VALVES` lines).
struct Setup {
    /// The manager's class.
    manager: String,
    /// Classes of the host's valves.
    host_valves: Vec<String>,
    /// Classes of the context's valves.
    context_valves: Vec<String>,
}

impl Fleet {
    /// Starts `nodes` memcached nodes, then a Tomcat for each of `modes`, each JVM with `jvm`
    /// flags, the `@baseline` ones from `baseline_jar`; panics when one does not serve, or does not
    /// run its mode's manager.
    pub fn start(
        modes: &[Mode],
        nodes: u32,
        jvm: &[String],
        baseline_jar: Option<&Path>,
        progress: &Progress,
    ) -> Fleet {
        let memcached: Vec<Memcached> = (0..nodes)
            .map(|_| Memcached::start_with(&["-m", MEMCACHED_MIB]))
            .collect();
        for (i, node) in memcached.iter().enumerate() {
            progress.say(format_args!(
                "memcached n{} pid {} on {}",
                i + 1,
                node.pid(),
                node.address()
            ));
        }
        let node_refs: Vec<&Memcached> = memcached.iter().collect();
        let tomcats = start_tomcats(modes, &node_list(&node_refs), jvm, baseline_jar);
        for (mode, tomcat) in &tomcats {
            check_route(*mode, tomcat);
            let setup = check_manager(*mode, tomcat);
            progress.say(format_args!(
                "Tomcat {} pid {} on 127.0.0.1:{}: Tomcat {}, {}{}",
                mode.name(),
                tomcat.pid(),
                tomcat.port,
                mode.line.line(),
                setup.manager,
                setup.own_valves(*mode)
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

    /// memcached's counters now, over all nodes.
    pub fn counters(&self) -> Counters {
        Counters::read(&self.memcached)
    }
}

impl Setup {
    /// The `MANAGER` and `VALVES` lines of `stdout`.
    fn of(stdout: &str) -> Option<Setup> {
        let manager = stdout
            .lines()
            .find_map(|line| line.strip_prefix("MANAGER "))?;
        let valves = stdout
            .lines()
            .find_map(|line| line.strip_prefix("VALVES "))?;
        let (host, context) = valves.split_once(' ')?;
        let list = |text: &str, key: &str| -> Option<Vec<String>> {
            let classes = text.strip_prefix(key)?;
            Some(classes.split(',').map(str::to_owned).collect())
        };
        Some(Setup {
            manager: manager.to_owned(),
            host_valves: list(host, "host=")?,
            context_valves: list(context, "context=")?,
        })
    }

    /// `, valves ...`: those of the manager's package, where they are (empty for Tomcat's own).
    fn own_valves(&self, mode: Mode) -> String {
        let Some(package) = mode.manager.valve_package() else {
            return String::new();
        };
        let own = |valves: &[String]| -> Vec<String> {
            valves
                .iter()
                .filter(|class| class.starts_with(package))
                .cloned()
                .collect()
        };
        format!(
            ", valves host={} context={}",
            own(&self.host_valves).join(","),
            own(&self.context_valves).join(",")
        )
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

/// What the Tomcat of `mode` reported of its manager; panics unless it runs the mode's manager
/// class, with the valves that manager adds at its start: one of its package in the context's
/// pipeline, and for the original msm one in the host's too (its request tracking valves).
fn check_manager(mode: Mode, tomcat: &Tomcat) -> Setup {
    let stdout = tomcat.stdout();
    let setup = Setup::of(&stdout).unwrap_or_else(|| {
        panic!(
            "Tomcat {} did not report its manager and valves:\n{stdout}",
            mode.name()
        )
    });
    assert_eq!(
        setup.manager,
        mode.manager.class(),
        "Tomcat {} runs another manager",
        mode.name()
    );
    if let Some(package) = mode.manager.valve_package() {
        let has = |valves: &[String]| valves.iter().any(|class| class.starts_with(package));
        assert!(
            has(&setup.context_valves) && (!mode.manager.is_msm_232() || has(&setup.host_valves)),
            "Tomcat {}'s manager did not add its valves: {stdout}",
            mode.name()
        );
    }
    setup
}
