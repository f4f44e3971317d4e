//! The session managers compared, and how a Tomcat is configured for each.

use crate::common::tomcat::Options;

/// One way of keeping sessions, served by a Tomcat of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
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
}

impl Mode {
    /// Every mode, in the order of the README.
    pub const ALL: [Mode; 5] = [
        Mode::Standard,
        Mode::StickyAsync,
        Mode::StickySync,
        Mode::NonSticky,
        Mode::NonStickyLocked,
    ];

    /// The name used in `MODES` and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Standard => "standard",
            Mode::StickyAsync => "sticky-async",
            Mode::StickySync => "sticky-sync",
            Mode::NonSticky => "nonsticky",
            Mode::NonStickyLocked => "nonsticky-locked",
        }
    }

    /// The mode called `name`.
    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// Its Tomcat's jvmRoute, which the demo application shows in every answer.
    pub fn route(self) -> &'static str {
        match self {
            Mode::Standard => "std",
            Mode::StickyAsync => "async",
            Mode::StickySync => "sync",
            Mode::NonSticky => "ns",
            Mode::NonStickyLocked => "nsl",
        }
    }

    /// Whether its sessions go to memcached.
    pub fn uses_memcached(self) -> bool {
        self != Mode::Standard
    }

    /// How its Tomcat starts: its manager (over `nodes`, the `memcachedNodes` value, for msm), with
    /// `jvm` as the JVM's flags.
    pub fn options(self, nodes: &str, jvm: &[String]) -> Options {
        let options = match self.msm_attributes() {
            None => Options {
                manager: "standard",
                ..Options::msm(self.route(), &[])
            },
            Some(extra) => {
                let mut attributes = vec![("memcachedNodes", nodes)];
                attributes.extend_from_slice(extra);
                Options::msm(self.route(), &attributes)
            }
        };
        Options {
            jvm_base: jvm.to_vec(),
            ..options
        }
    }

    /// msm's attributes besides the node list; `None` for Tomcat's own manager.
    fn msm_attributes(self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Mode::Standard => None,
            Mode::StickyAsync => Some(&[("sessionBackupAsync", "true")]),
            Mode::StickySync => Some(&[
                ("sessionBackupAsync", "false"),
                ("sessionBackupTimeout", "1000"),
            ]),
            Mode::NonSticky => Some(&[("sticky", "false")]),
            Mode::NonStickyLocked => Some(&[("sticky", "false"), ("lockingMode", "all")]),
        }
    }
}
