//! CPU time a process has used, from `/proc/<pid>/stat`: steadier than requests/s on a shared
//! machine, because a neighbour's load slows the clock but not the work done per request.

use std::time::Duration;

/// User plus system CPU time that process `pid` (all its threads) has used so far.
pub fn used(pid: u32) -> Duration {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let ticks = ticks(&stat).unwrap_or_else(|| panic!("no utime and stime in {path}: {stat:?}"));
    Duration::from_secs_f64(ticks as f64 / ticks_per_second())
}

/// utime + stime (fields 14 and 15) of a `stat` line, in clock ticks. The command name, field 2,
/// may hold spaces and parentheses, so fields are counted from its closing parenthesis.
fn ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second, the unit of `stat`'s times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(ticks > 0, "sysconf(_SC_CLK_TCK) failed");
    ticks as f64
}
