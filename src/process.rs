//! What the operating system says about processes: whether one exists, when it started, and
//! which machine and boot this is. The run log's owners (`store/owner.rs`) and the browser's
//! profile folders (`steps/browser/profiles.rs`) both ask whether a process they recorded is
//! still there.

/// Whether a process with this id exists (as anyone's: signal 0 to another user's process
/// answers EPERM, and it still exists).
pub(crate) fn exists(pid: i64) -> bool {
    // 0 and negative ids name process groups (-1: every process), never one process.
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. With the
/// boot id, it tells a process from a later one that got the same id.
pub(crate) fn start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This machine's boot id; empty where the system does not say.
pub(crate) fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default()
}

pub(crate) fn host_name() -> Option<String> {
    read_trimmed("/proc/sys/kernel/hostname")
}

fn read_trimmed(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_exists_and_has_a_start_time() {
        let me = std::process::id() as i64;
        assert!(super::exists(me));
        assert!(!super::exists(i32::MAX as i64));
        assert!(!super::exists(-1) && !super::exists(0), "process groups, not processes");
        assert!(super::start_time(me).is_some());
        assert_eq!(super::start_time(me), super::start_time(me));
    }
}
