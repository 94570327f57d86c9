//! What the overload and soak tests read about a server process from /proc, and
//! the descriptor limit of the test process itself.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Open file descriptors of process `pid` (0 if it cannot be read).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A field of /proc/PID/status given in kB (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Resident memory of `pid` now, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").expect("VmRSS of the server")
}

/// Peak resident memory of `pid` so far (the kernel's high-water mark), in KiB.
pub fn hwm_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM").expect("VmHWM of the server")
}

/// CPU time `pid` has used, user plus system, from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat of the server");
    // The command name is in parentheses and may contain spaces: count from after it.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0, "getrlimit");
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Samples the resident memory of a process every 20 ms until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::SeqCst) {
                peak = peak.max(status_kib(pid, "VmRSS").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        RssSampler { stop, thread: Some(thread) }
    }

    /// Stops sampling; the largest RSS seen, in KiB.
    pub fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The `WARN` lines of `stderr` (env_logger's default format,
/// `[2026-11-21T10:00:00Z WARN  target] message`) whose message contains `needle`,
/// counted per timestamp (one-second resolution).
pub fn warnings_per_second(stderr: &str, needle: &str) -> BTreeMap<String, usize> {
    let mut per_second = BTreeMap::new();
    for line in stderr.lines().filter(|l| l.contains(" WARN ") && l.contains(needle)) {
        let stamp = line.trim_start_matches('[').split(' ').next().unwrap_or("").to_string();
        *per_second.entry(stamp).or_insert(0) += 1;
    }
    per_second
}

/// Lines of `stderr` logged at `ERROR` level or reporting a panic.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" ERROR ") || l.contains("panicked")).collect()
}
