//! The modes compared: a session manager configuration, and the jar that provides it. How a
//! Tomcat is configured for each.

use std::path::Path;

use crate::common::tomcat::Options;

/// What a mode's name ends with when its Tomcat runs `BASELINE_JAR`.
const BASELINE_SUFFIX: &str = "@baseline";

/// Width of the mode column in the output: the longest manager name with [`BASELINE_SUFFIX`]
/// (`sticky-async-attribute@baseline`), computed so that a new mode cannot break the columns.
pub const NAME_WIDTH: usize = {
    let mut longest = 0;
    let mut i = 0;
    while i < Manager::ALL.len() {
        let length = Manager::ALL[i].name().len();
        if length > longest {
            longest = length;
        }
        i += 1;
    }
    longest + BASELINE_SUFFIX.len()
};

/// `eventSweepInterval` of the modes with expiry events: the default, a minute, which is also
/// how often Tomcat's background processing polls by default.
const EVENT_SWEEP_INTERVAL: &str = "60";

/// One way of keeping sessions, served by a Tomcat of its own: a manager configuration, run
/// from this build's jar or from `BASELINE_JAR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// The manager and its attributes.
    pub manager: Manager,
    /// The jar the Tomcat runs the manager from.
    pub jar: Jar,
}

/// A session manager configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// Tomcat's StandardManager: sessions only in the JVM's memory (the baseline).
    Standard,
    /// msm, sticky, the backup written after the response.
    StickyAsync,
    /// msm, sticky, the request waits for its backup.
    StickySync,
    /// msm, non-sticky, no locking.
    NonSticky,
    /// msm, non-sticky, `lockingMode=all`.
    NonStickyLocked,
    /// [`Manager::StickyAsync`] with expiry events (`sessionEvents=expiry`).
    StickyAsyncEvents,
    /// [`Manager::NonSticky`] with expiry events (`sessionEvents=expiry`).
    NonStickyEvents,
    /// [`Manager::NonSticky`] writing only the attributes that changed
    /// (`updateGranularity=attribute`).
    NonStickyAttribute,
    /// [`Manager::StickyAsync`] backing up only the attributes that changed
    /// (`updateGranularity=attribute`).
    StickyAsyncAttribute,
}

/// Where the manager's classes and native library come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jar {
    /// This build's `target/java/msm-tomcat10.jar`.
    Built,
    /// The jar `BASELINE_JAR` names (another build of msm, to compare with): modes named with
    /// `@baseline`.
    Baseline,
}

impl Manager {
    /// Every manager configuration, in the order of the README.
    pub const ALL: [Manager; 9] = [
        Manager::Standard,
        Manager::StickyAsync,
        Manager::StickySync,
        Manager::NonSticky,
        Manager::NonStickyLocked,
        Manager::StickyAsyncEvents,
        Manager::NonStickyEvents,
        Manager::NonStickyAttribute,
        Manager::StickyAsyncAttribute,
    ];

    /// The name used in `MODES` and in the output.
    pub const fn name(self) -> &'static str {
        match self {
            Manager::Standard => "standard",
            Manager::StickyAsync => "sticky-async",
            Manager::StickySync => "sticky-sync",
            Manager::NonSticky => "nonsticky",
            Manager::NonStickyLocked => "nonsticky-locked",
            Manager::StickyAsyncEvents => "sticky-async-events",
            Manager::NonStickyEvents => "nonsticky-events",
            Manager::NonStickyAttribute => "nonsticky-attribute",
            Manager::StickyAsyncAttribute => "sticky-async-attribute",
        }
    }

    /// The jvmRoute of its Tomcat from this build's jar.
    fn route(self) -> &'static str {
        match self {
            Manager::Standard => "std",
            Manager::StickyAsync => "async",
            Manager::StickySync => "sync",
            Manager::NonSticky => "ns",
            Manager::NonStickyLocked => "nsl",
            Manager::StickyAsyncEvents => "asyncev",
            Manager::NonStickyEvents => "nsev",
            Manager::NonStickyAttribute => "nsattr",
            Manager::StickyAsyncAttribute => "asyncattr",
        }
    }

    /// msm's attributes besides the node list; `None` for Tomcat's own manager.
    fn msm_attributes(self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Manager::Standard => None,
            Manager::StickyAsync => Some(&[("sessionBackupAsync", "true")]),
            Manager::StickySync => Some(&[
                ("sessionBackupAsync", "false"),
                ("sessionBackupTimeout", "1000"),
            ]),
            Manager::NonSticky => Some(&[("sticky", "false")]),
            Manager::NonStickyLocked => Some(&[("sticky", "false"), ("lockingMode", "all")]),
            Manager::StickyAsyncEvents => Some(&[
                ("sessionBackupAsync", "true"),
                ("sessionEvents", "expiry"),
                ("eventSweepInterval", EVENT_SWEEP_INTERVAL),
            ]),
            Manager::NonStickyEvents => Some(&[
                ("sticky", "false"),
                ("sessionEvents", "expiry"),
                ("eventSweepInterval", EVENT_SWEEP_INTERVAL),
            ]),
            Manager::NonStickyAttribute => {
                Some(&[("sticky", "false"), ("updateGranularity", "attribute")])
            }
            Manager::StickyAsyncAttribute => Some(&[
                ("sessionBackupAsync", "true"),
                ("updateGranularity", "attribute"),
            ]),
        }
    }
}

impl Mode {
    /// The mode called `name`: a manager's name, with `@baseline` for `BASELINE_JAR`.
    pub fn parse(name: &str) -> Option<Mode> {
        let (manager, jar) = match name.strip_suffix(BASELINE_SUFFIX) {
            Some(manager) => (manager, Jar::Baseline),
            None if name.contains('@') => return None,
            None => (name, Jar::Built),
        };
        let manager = Manager::ALL.into_iter().find(|m| m.name() == manager)?;
        Some(Mode { manager, jar })
    }

    /// The name used in `MODES` and in the output.
    pub fn name(self) -> String {
        match self.jar {
            Jar::Built => self.manager.name().to_owned(),
            Jar::Baseline => format!("{}{BASELINE_SUFFIX}", self.manager.name()),
        }
    }

    /// Its Tomcat's jvmRoute, which the demo application shows in every answer.
    pub fn route(self) -> String {
        match self.jar {
            Jar::Built => self.manager.route().to_owned(),
            Jar::Baseline => format!("{}b", self.manager.route()),
        }
    }

    /// Whether its sessions go to memcached.
    pub fn uses_memcached(self) -> bool {
        self.manager != Manager::Standard
    }

    /// How its Tomcat starts: its manager (over `nodes`, the `memcachedNodes` value, for msm), with
    /// `jvm` as the JVM's flags, from `baseline_jar` for a `@baseline` mode.
    pub fn options(self, nodes: &str, jvm: &[String], baseline_jar: Option<&Path>) -> Options {
        let route = self.route();
        let options = match self.manager.msm_attributes() {
            None => Options {
                manager: "standard",
                ..Options::msm(&route, &[])
            },
            Some(extra) => {
                let mut attributes = vec![("memcachedNodes", nodes)];
                attributes.extend_from_slice(extra);
                Options::msm(&route, &attributes)
            }
        };
        let manager_jar = match self.jar {
            Jar::Built => None,
            Jar::Baseline => Some(
                baseline_jar
                    .unwrap_or_else(|| panic!("{} needs BASELINE_JAR", self.name()))
                    .to_owned(),
            ),
        };
        Options {
            jvm_base: jvm.to_vec(),
            manager_jar,
            ..options
        }
    }
}
