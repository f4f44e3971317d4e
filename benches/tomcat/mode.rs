//! The modes compared: a session manager configuration, the jar that provides it and the Tomcat
//! line that runs it. How a Tomcat is configured for each.

use std::path::{Path, PathBuf};

use crate::common::tomcat::{Options, Variant};

/// What a mode's name ends with when its Tomcat runs `BASELINE_JAR`.
const BASELINE_SUFFIX: &str = "@baseline";

/// `eventSweepInterval` of the modes with expiry events: the default, a minute, which is also
/// how often Tomcat's background processing polls by default.
const EVENT_SWEEP_INTERVAL: &str = "60";

/// `sessionBackupTimeout` of the modes whose requests wait for their backup, in milliseconds:
/// the same for this manager and the original.
const BACKUP_TIMEOUT: &str = "1000";

/// Where the original memcached-session-manager 2.3.2's jars are fetched, under the crate's
/// directory.
pub const MSM_232_DIR: &str = "target/java/msm-2.3.2";

/// The command that fetches them there, from Maven Central.
pub const MSM_232_FETCH: &str =
    "mvn -q -B -f benches/tomcat/msm-2.3.2/pom.xml dependency:copy-dependencies";

/// The jars of msm 2.3.2 its README lists for memcached (spymemcached in the release msm 2.3.2
/// depends on).
pub const MSM_232_JARS: [&str; 3] = [
    "memcached-session-manager-2.3.2.jar",
    "memcached-session-manager-tc9-2.3.2.jar",
    "spymemcached-2.12.0.jar",
];

/// The original msm's manager class, as its README puts it in `<Manager className=...>`.
const MSM_232_CLASS: &str = "de.javakaffee.web.msm.MemcachedBackupSessionManager";

/// `EmbeddedTomcat --manager` for the original msm.
const MSM_232_MANAGER: &str = "class:de.javakaffee.web.msm.MemcachedBackupSessionManager";

/// One way of keeping sessions, served by a Tomcat of its own: a manager configuration, run
/// from this build's jar or from `BASELINE_JAR`, on one Tomcat line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// The manager and its attributes.
    pub manager: Manager,
    /// The jar the Tomcat runs the manager from.
    pub jar: Jar,
    /// The Tomcat line.
    pub line: Variant,
    /// The line of the run (`TOMCAT`): the name says the mode's line only when it differs.
    run_line: Variant,
}

/// A session manager configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// Tomcat's StandardManager: sessions only in the JVM's memory (the baseline).
    Standard,
    /// This manager, sticky, the backup written after the response.
    StickyAsync,
    /// This manager, sticky, the request waits for its backup.
    StickySync,
    /// This manager, non-sticky, no locking.
    NonSticky,
    /// This manager, non-sticky, `lockingMode=all`.
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
    /// [`Manager::StickyAsync`] compressing sessions of 4 KiB and more
    /// (`compressionThreshold=4096`, the README's suggestion).
    StickyAsyncCompressed,
    /// The original memcached-session-manager 2.3.2, sticky, backups after the response (its
    /// default).
    Msm232StickyAsync,
    /// msm 2.3.2, sticky, the request waits for its backup (`sessionBackupAsync=false`).
    Msm232StickySync,
    /// msm 2.3.2, non-sticky (`sticky=false`), no locking (its default).
    Msm232NonSticky,
    /// msm 2.3.2, non-sticky, `lockingMode=all`.
    Msm232NonStickyLocked,
}

/// Where the manager's classes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jar {
    /// This build's `target/java/msm-tomcat9.jar` or `msm-tomcat10.jar`, for the line; for
    /// msm 2.3.2, its jars in [`MSM_232_DIR`].
    Built,
    /// The jar `BASELINE_JAR` names (another build of this manager, to compare with): modes
    /// named with `@baseline`.
    Baseline,
}

impl Manager {
    /// Every manager configuration: this manager's in the order of the README, then the
    /// original's.
    pub const ALL: [Manager; 14] = [
        Manager::Standard,
        Manager::StickyAsync,
        Manager::StickySync,
        Manager::NonSticky,
        Manager::NonStickyLocked,
        Manager::StickyAsyncEvents,
        Manager::NonStickyEvents,
        Manager::NonStickyAttribute,
        Manager::StickyAsyncAttribute,
        Manager::StickyAsyncCompressed,
        Manager::Msm232StickyAsync,
        Manager::Msm232StickySync,
        Manager::Msm232NonSticky,
        Manager::Msm232NonStickyLocked,
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
            Manager::StickyAsyncCompressed => "sticky-async-compressed",
            Manager::Msm232StickyAsync => "msm-sticky-async",
            Manager::Msm232StickySync => "msm-sticky-sync",
            Manager::Msm232NonSticky => "msm-nonsticky",
            Manager::Msm232NonStickyLocked => "msm-nonsticky-locked",
        }
    }

    /// The jvmRoute of its Tomcat from this build's jar on Tomcat 9.
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
            Manager::StickyAsyncCompressed => "asynclz4",
            Manager::Msm232StickyAsync => "masync",
            Manager::Msm232StickySync => "msync",
            Manager::Msm232NonSticky => "mns",
            Manager::Msm232NonStickyLocked => "mnsl",
        }
    }

    /// Whether it is the original memcached-session-manager 2.3.2.
    pub fn is_msm_232(self) -> bool {
        matches!(
            self,
            Manager::Msm232StickyAsync
                | Manager::Msm232StickySync
                | Manager::Msm232NonSticky
                | Manager::Msm232NonStickyLocked
        )
    }

    /// The manager's class, which its Tomcat reports at start.
    pub fn class(self) -> &'static str {
        match self {
            Manager::Standard => "org.apache.catalina.session.StandardManager",
            _ if self.is_msm_232() => MSM_232_CLASS,
            _ => "io.msm.tomcat.MemcachedSessionManager",
        }
    }

    /// The package of the valves the manager adds to Tomcat's pipelines at its start (the
    /// requests' begin and end); `None` for Tomcat's own manager, which adds none.
    pub fn valve_package(self) -> Option<&'static str> {
        match self {
            Manager::Standard => None,
            _ if self.is_msm_232() => Some("de.javakaffee.web.msm."),
            _ => Some("io.msm."),
        }
    }

    /// Its attributes besides the node list; `None` for Tomcat's own manager.
    fn attributes(self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Manager::Standard => None,
            Manager::StickyAsync | Manager::Msm232StickyAsync => {
                Some(&[("sessionBackupAsync", "true")])
            }
            Manager::StickySync | Manager::Msm232StickySync => Some(&[
                ("sessionBackupAsync", "false"),
                ("sessionBackupTimeout", BACKUP_TIMEOUT),
            ]),
            Manager::NonSticky | Manager::Msm232NonSticky => Some(&[("sticky", "false")]),
            Manager::NonStickyLocked | Manager::Msm232NonStickyLocked => {
                Some(&[("sticky", "false"), ("lockingMode", "all")])
            }
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
            Manager::StickyAsyncCompressed => Some(&[
                ("sessionBackupAsync", "true"),
                ("compressionThreshold", "4096"),
            ]),
        }
    }
}

/// A Tomcat line as a mode's name and `TOMCAT` say it.
pub fn line_name(line: Variant) -> &'static str {
    match line {
        Variant::Tomcat9 => "9",
        Variant::Tomcat10 => "10.1",
        Variant::Tomcat11 => "11",
    }
}

/// The line called `name` (`9`, `10.1`, `11`).
pub fn parse_line(name: &str) -> Option<Variant> {
    Variant::ALL
        .into_iter()
        .find(|&line| line_name(line) == name)
}

/// The lines' names, for messages: `9, 10.1, 11`.
pub fn line_names() -> String {
    Variant::ALL.map(line_name).join(", ")
}

impl Mode {
    /// The mode called `name`: a manager's name, then `@baseline` for `BASELINE_JAR` and
    /// `@tomcat<line>` (`@tomcat9`, `@tomcat10.1`, `@tomcat11`) for a line other than
    /// `run_line`, in any order; an error says what is wrong.
    pub fn parse(name: &str, run_line: Variant) -> Result<Mode, String> {
        let mut parts = name.split('@');
        let manager_name = parts.next().unwrap_or_default();
        let manager = Manager::ALL
            .into_iter()
            .find(|m| m.name() == manager_name)
            .ok_or_else(|| {
                let known: Vec<_> = Manager::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown mode {name}: the managers are {}, each optionally followed by \
                     {BASELINE_SUFFIX} and @tomcat<line> (line {})",
                    known.join(" "),
                    line_names()
                )
            })?;
        let mut mode = Mode {
            manager,
            jar: Jar::Built,
            line: run_line,
            run_line,
        };
        let (mut baseline, mut line) = (false, false);
        for suffix in parts {
            if suffix == &BASELINE_SUFFIX[1..] && !baseline {
                baseline = true;
                mode.jar = Jar::Baseline;
            } else if let Some(variant) = suffix.strip_prefix("tomcat").and_then(parse_line) {
                if line {
                    return Err(format!("mode {name} names two Tomcat lines"));
                }
                line = true;
                mode.line = variant;
            } else {
                return Err(format!(
                    "mode {name}: unknown suffix @{suffix} ({BASELINE_SUFFIX}, or @tomcat<line> \
                     with line {})",
                    line_names()
                ));
            }
        }
        if manager.is_msm_232() {
            if mode.line != Variant::Tomcat9 {
                return Err(format!(
                    "mode {name}: memcached-session-manager 2.3.2 exists for Tomcat 9 at the \
                     latest, not Tomcat {}: run it on Tomcat 9 (TOMCAT=9, or the suffix \
                     @tomcat9)",
                    line_name(mode.line)
                ));
            }
            if mode.jar == Jar::Baseline {
                return Err(format!(
                    "mode {name}: {BASELINE_SUFFIX} runs another build of this manager, not \
                     of memcached-session-manager 2.3.2"
                ));
            }
        }
        Ok(mode)
    }

    /// The name used in `MODES` and in the output: the manager's, with `@baseline` for
    /// `BASELINE_JAR` and `@tomcat<line>` when not on the run's line.
    pub fn name(self) -> String {
        let mut name = self.manager.name().to_owned();
        if self.jar == Jar::Baseline {
            name += BASELINE_SUFFIX;
        }
        if self.line != self.run_line {
            name += &format!("@tomcat{}", line_name(self.line));
        }
        name
    }

    /// Its Tomcat's jvmRoute, which the demo application shows in every answer: unique to the
    /// manager, jar and line.
    pub fn route(self) -> String {
        let jar = match self.jar {
            Jar::Built => "",
            Jar::Baseline => "b",
        };
        let line = match self.line {
            Variant::Tomcat9 => "",
            Variant::Tomcat10 => "t10",
            Variant::Tomcat11 => "t11",
        };
        format!("{}{jar}{line}", self.manager.route())
    }

    /// Whether its sessions go to memcached.
    pub fn uses_memcached(self) -> bool {
        self.manager != Manager::Standard
    }

    /// Whether sessions lost under load are only reported: for the original msm, which loses
    /// some in non-sticky mode, while a loss of this manager's or Tomcat's is a failed check.
    pub fn may_lose_sessions(self) -> bool {
        self.manager.is_msm_232()
    }

    /// How its Tomcat starts: its manager (over `nodes`, the `memcachedNodes` value, for a
    /// memcached one), with `jvm` as the JVM's flags, from `baseline_jar` for a `@baseline`
    /// mode.
    pub fn options(self, nodes: &str, jvm: &[String], baseline_jar: Option<&Path>) -> Options {
        let route = self.route();
        let mut options = match self.manager.attributes() {
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
        if self.manager.is_msm_232() {
            options.manager = MSM_232_MANAGER;
            options.lib_jars = msm_232_jars();
        }
        let manager_jar = match self.jar {
            Jar::Built => None,
            Jar::Baseline => Some(
                baseline_jar
                    .unwrap_or_else(|| panic!("{} needs BASELINE_JAR", self.name()))
                    .to_owned(),
            ),
        };
        Options {
            variant: self.line,
            jvm_base: jvm.to_vec(),
            manager_jar,
            ..options
        }
    }
}

/// The jars in [`MSM_232_DIR`], sorted.
pub fn msm_232_jars() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(MSM_232_DIR);
    let mut jars: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| Some(entry.ok()?.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "jar"))
                .collect()
        })
        .unwrap_or_default();
    jars.sort();
    jars
}
