//! What the operating system says about processes: whether one exists, when it started, and
//! which machine and boot this is. The run log's owners (`store/owner.rs`) and the browser's
//! profile folders (`steps/browser/profiles.rs`) both ask whether a process they recorded is
//! still there. And one thing it is told: that freed heap may go back to it (`trim_soon`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

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

/// How long the process must have been without a new burst before its heap is trimmed.
const TRIM_SETTLE: Duration = Duration::from_millis(500);

static TRIM: Quiet = Quiet::new(TRIM_SETTLE);

/// Gives the heap that bursts of work freed back to the operating system once they have stopped
/// for `TRIM_SETTLE`. glibc keeps freed memory for reuse, and `serve` idles for hours after the
/// bursts it is made of (loading every workflow file, a reload, rendering a page of 10,000
/// workflows): without a trim it would hold the peak of the last burst all night. A dashboard
/// polled without pause is not trimmed between its requests. Call inside a tokio runtime.
pub(crate) fn trim_soon() {
    TRIM.call(trim_now);
}

/// Runs a task once calls have stopped coming for `settle` (a debounce): one run per quiet spell.
pub(crate) struct Quiet {
    calls: AtomicU64,
    pending: AtomicBool,
    settle: Duration,
}

impl Quiet {
    pub(crate) const fn new(settle: Duration) -> Quiet {
        Quiet { calls: AtomicU64::new(0), pending: AtomicBool::new(false), settle }
    }

    /// Counts a call; `work` runs (on tokio's blocking pool) once none came for `settle`.
    pub(crate) fn call(&'static self, work: fn() -> bool) {
        self.calls.fetch_add(1, Ordering::AcqRel);
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            let mut seen = self.calls.load(Ordering::Acquire);
            loop {
                tokio::time::sleep(self.settle).await;
                let now = self.calls.load(Ordering::Acquire);
                if now == seen {
                    break;
                }
                seen = now;
            }
            // Cleared first: a call from here on starts a wait of its own.
            self.pending.store(false, Ordering::Release);
            let _ = tokio::task::spawn_blocking(work).await;
        });
    }
}

/// Returns freed heap to the operating system now; whether any was returned.
pub(crate) fn trim_now() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Releases free pages inside every arena, not only the top of the main heap, which is
        // all glibc gives back on its own.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
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

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_calls_runs_the_task_once_after_it_goes_quiet() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        fn count() -> bool {
            RUNS.fetch_add(1, Ordering::SeqCst);
            true
        }
        // The task runs on a thread of its own: waited for in real time, with a deadline.
        async fn until(done: impl Fn() -> bool) {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !done() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let q: &'static super::Quiet = Box::leak(Box::new(super::Quiet::new(Duration::from_millis(500))));
        // Calls 300 ms apart for 3 s: never quiet for 500 ms.
        for _ in 0..10 {
            q.call(count);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), 0, "ran while the calls kept coming");
        // Quiet from here: it runs once.
        until(|| RUNS.load(Ordering::SeqCst) > 0).await;
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "one run per quiet spell");
        // A later call starts another wait, and another run.
        q.call(count);
        until(|| RUNS.load(Ordering::SeqCst) > 1).await;
        assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_returns_freed_small_blocks_to_the_system() {
        // Blocks below glibc's mmap threshold stay in the heap when freed; one kept after them
        // stops the heap's top from shrinking on its own.
        let blocks: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let keep = Box::new([1u8; 64]);
        drop(blocks);
        assert!(super::trim_now(), "32 MiB of freed 1 KiB blocks: some pages go back");
        assert_eq!(keep[0], 1);
    }
}
