//! A log file written by a background thread, so that a slow disk never stalls
//! an event loop: loops append lines to in-memory buffers, the thread writes
//! them out at least once a second and reopens the file on request (for
//! logrotate's SIGHUP).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How often buffered lines are written out at the latest.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A buffer this full wakes the writing thread before its interval is up.
const WAKE_BYTES: usize = 64 * 1024;
/// Lines beyond this many buffered bytes (per writer) are dropped and counted:
/// the disk is not keeping up, and memory must stay bounded.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Write errors are logged at most this often.
const ERROR_INTERVAL: Duration = Duration::from_secs(60);

/// Where the lines go.
#[derive(Clone, Debug)]
enum Target {
    Stdout,
    File(PathBuf),
}

/// A log destination (a file, or standard output) with its writing thread.
/// Dropping it writes out what is buffered and stops the thread.
#[derive(Debug)]
pub struct LogFile {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A handle for appending lines to a [`LogFile`] from one event loop; cheap to
/// clone, `Send`. Appending takes an uncontended lock and never touches the disk.
#[derive(Clone, Debug)]
pub struct LogWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    target: Target,
    buffers: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
    reopen: AtomicBool,
    stop: AtomicBool,
    dropped: AtomicU64,
    thread: Mutex<Option<Thread>>,
}

impl LogFile {
    /// Opens `path` for appending (creating it, mode 0640), or standard output for
    /// `-`, and starts the thread that writes to it.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let target = if path == Path::new("-") { Target::Stdout } else { Target::File(path.to_path_buf()) };
        let out = open(&target)?;
        let shared = Arc::new(Shared {
            target,
            buffers: Mutex::new(Vec::new()),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            thread: Mutex::new(None),
        });
        let thread_shared = shared.clone();
        let thread =
            thread::Builder::new().name("spindle-log".into()).spawn(move || write_loop(&thread_shared, out))?;
        *lock(&shared.thread) = Some(thread.thread().clone());
        Ok(LogFile { shared, thread: Some(thread) })
    }

    /// A new writer with a buffer of its own (give each event loop one).
    pub fn writer(&self) -> LogWriter {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        lock(&self.shared.buffers).push(buffer.clone());
        LogWriter { buffer, shared: self.shared.clone() }
    }

    /// Asks the writing thread to write out what is buffered and reopen the file
    /// by its path (after logrotate moved it away). Returns at once.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        self.shared.wake();
    }

    /// Lines dropped so far because the destination did not keep up.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LogWriter {
    /// Appends one line: `write` writes it (without the newline, which is added)
    /// into the buffer. When too much is already waiting, the line is dropped.
    pub fn line(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut buffer = lock(&self.buffer);
        if buffer.len() >= MAX_PENDING_BYTES {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = buffer.len();
        write(&mut buffer);
        buffer.push(b'\n');
        if before < WAKE_BYTES && buffer.len() >= WAKE_BYTES {
            drop(buffer);
            self.shared.wake();
        }
    }
}

impl Shared {
    fn wake(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.unpark();
        }
    }
}

/// Locks `mutex`, ignoring poisoning: the data is plain bytes, always consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open(target: &Target) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        Target::Stdout => Box::new(io::stdout()),
        Target::File(path) => {
            let file: File = OpenOptions::new().append(true).create(true).mode(0o640).open(path)?;
            Box::new(file)
        }
    })
}

/// The writing thread: every interval (or when woken), takes each writer's
/// buffered lines and writes them; reopens when asked; exits when stopped, after
/// a last round.
fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut batch = Vec::new();
    let mut last_error: Option<Instant> = None;
    let mut reported_drops = 0;
    loop {
        thread::park_timeout(FLUSH_INTERVAL);
        let stopping = shared.stop.load(Ordering::Acquire);
        let buffers: Vec<_> = lock(&shared.buffers).clone();
        for buffer in buffers {
            // Swap rather than copy: the loop keeps appending to a buffer while this
            // one is written, and capacity is recycled both ways.
            std::mem::swap(&mut *lock(&buffer), &mut batch);
            if let Err(e) = out.write_all(&batch) {
                if last_error.is_none_or(|t| t.elapsed() >= ERROR_INTERVAL) {
                    log::error!("writing the access log: {e}");
                    last_error = Some(Instant::now());
                }
            }
            batch.clear();
            if batch.capacity() > 2 * WAKE_BYTES {
                batch.shrink_to(WAKE_BYTES);
            }
        }
        let _ = out.flush();
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped != reported_drops && last_error.is_none_or(|t| t.elapsed() >= ERROR_INTERVAL) {
            log::warn!("access log not keeping up: {} lines dropped", dropped - reported_drops);
            reported_drops = dropped;
        }
        if stopping {
            return;
        }
        if shared.reopen.swap(false, Ordering::AcqRel) {
            match open(&shared.target) {
                Ok(reopened) => out = reopened,
                Err(e) => log::error!("reopening the access log: {e}; still writing to the old file"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_and_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = LogFile::open(&path).unwrap();
        let writer = log.writer();
        writer.line(|b| b.extend_from_slice(b"one"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap() != "one\n" {
            assert!(Instant::now() < deadline, "line not written within 5 s");
            thread::sleep(Duration::from_millis(20));
        }
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.reopen();
        while !path.exists() {
            assert!(Instant::now() < deadline, "file not reopened");
            thread::sleep(Duration::from_millis(20));
        }
        writer.line(|b| b.extend_from_slice(b"two"));
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("access.log.1")).unwrap(), "one\n");
    }

    #[test]
    fn drops_lines_beyond_the_bound() {
        // No writing thread: nothing drains the buffer.
        let shared = Arc::new(Shared {
            target: Target::Stdout,
            buffers: Mutex::new(Vec::new()),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            thread: Mutex::new(None),
        });
        let writer = LogWriter { buffer: Arc::new(Mutex::new(Vec::new())), shared: shared.clone() };
        writer.line(|b| b.resize(MAX_PENDING_BYTES - 1, b'x'));
        writer.line(|b| b.extend_from_slice(b"dropped"));
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(lock(&writer.buffer).len(), MAX_PENDING_BYTES);
    }
}
