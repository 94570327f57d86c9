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

    /// Lines dropped so far because the destination did not keep up, or failed
    /// (a full disk).
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

/// The writing thread: every interval (or when woken), writes a round; reopens
/// when asked; exits when stopped, after a last round.
fn write_loop(shared: &Shared, out: Box<dyn Write + Send>) {
    let mut output = Output::new(out);
    let mut batch = Vec::new();
    loop {
        thread::park_timeout(FLUSH_INTERVAL);
        let stopping = shared.stop.load(Ordering::Acquire);
        output.round(shared, &mut batch);
        if stopping {
            return;
        }
        if shared.reopen.swap(false, Ordering::AcqRel) {
            // A line cut short stays marked: the path may still name the same file.
            match open(&shared.target) {
                Ok(reopened) => output.out = reopened,
                Err(e) => log::error!("reopening the access log: {e}; still writing to the old file"),
            }
        }
    }
}

/// The destination as the writing thread sees it, with what it remembers of
/// failed writes from one round to the next.
struct Output {
    out: Box<dyn Write + Send>,
    /// When a write error was last logged.
    last_error: Option<Instant>,
    /// A write has failed since the last one that succeeded.
    failing: bool,
    /// A failed write cut a line short: the destination does not end with a newline.
    partial_line: bool,
    /// The part of `Shared::dropped` already reported.
    reported_drops: u64,
}

impl Output {
    fn new(out: Box<dyn Write + Send>) -> Output {
        Output { out, last_error: None, failing: false, partial_line: false, reported_drops: 0 }
    }

    /// One round: takes each writer's buffered lines and writes them, counting
    /// those that do not get out as dropped; then reports drops. `batch` is
    /// scratch space kept from round to round.
    fn round(&mut self, shared: &Shared, batch: &mut Vec<u8>) {
        let buffers: Vec<_> = lock(&shared.buffers).clone();
        for buffer in buffers {
            // Swap rather than copy: the loop keeps appending to a buffer while this
            // one is written, and capacity is recycled both ways.
            std::mem::swap(&mut *lock(&buffer), batch);
            match self.write_lines(batch) {
                Ok(()) if self.failing && !batch.is_empty() => {
                    self.failing = false;
                    let dropped = shared.dropped.load(Ordering::Relaxed);
                    log::warn!("access log writable again; {} lines lost meanwhile", dropped - self.reported_drops);
                    self.reported_drops = dropped;
                }
                Ok(()) => {}
                Err((e, lost)) => {
                    shared.dropped.fetch_add(lost, Ordering::Relaxed);
                    self.failing = true;
                    if self.last_error.is_none_or(|t| t.elapsed() >= ERROR_INTERVAL) {
                        log::error!("writing the access log: {e}");
                        self.last_error = Some(Instant::now());
                    }
                }
            }
            batch.clear();
            if batch.capacity() > 2 * WAKE_BYTES {
                batch.shrink_to(WAKE_BYTES);
            }
        }
        let _ = self.out.flush();
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped != self.reported_drops && self.last_error.is_none_or(|t| t.elapsed() >= ERROR_INTERVAL) {
            log::warn!("access log not keeping up: {} lines dropped", dropped - self.reported_drops);
            self.reported_drops = dropped;
        }
    }

    /// Writes `batch` (whole lines) so that the destination's lines stay whole
    /// as far as they can: a line cut short by a failed write (a full disk takes
    /// what fits) is ended with a newline before anything else is written. On
    /// failure, returns the error and how many lines did not get out whole.
    fn write_lines(&mut self, batch: &[u8]) -> Result<(), (io::Error, u64)> {
        if batch.is_empty() {
            return Ok(());
        }
        let lines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if self.partial_line {
            write_all_at(&mut *self.out, b"\n", &mut 0).map_err(|e| (e, lines(batch)))?;
            self.partial_line = false;
        }
        let mut written = 0;
        write_all_at(&mut *self.out, batch, &mut written).map_err(|e| {
            self.partial_line = written > 0 && batch[written - 1] != b'\n';
            (e, lines(&batch[written..]))
        })
    }
}

/// `Write::write_all`, except that on failure `written` tells how much of
/// `bytes` did get out.
fn write_all_at(out: &mut dyn Write, bytes: &[u8], written: &mut usize) -> io::Result<()> {
    while *written < bytes.len() {
        match out.write(&bytes[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    /// Shared state with no writing thread: nothing drains the buffers unless a
    /// test does.
    fn unstarted() -> Arc<Shared> {
        Arc::new(Shared {
            target: Target::Stdout,
            buffers: Mutex::new(Vec::new()),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            thread: Mutex::new(None),
        })
    }

    #[test]
    fn drops_lines_beyond_the_bound() {
        let shared = unstarted();
        let writer = LogWriter { buffer: Arc::new(Mutex::new(Vec::new())), shared: shared.clone() };
        writer.line(|b| b.resize(MAX_PENDING_BYTES - 1, b'x'));
        writer.line(|b| b.extend_from_slice(b"dropped"));
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(lock(&writer.buffer).len(), MAX_PENDING_BYTES);
    }

    /// A disk that takes `room` more bytes, then fails with ENOSPC until given more.
    #[derive(Clone, Default)]
    struct Disk(Arc<Mutex<DiskState>>);

    #[derive(Default)]
    struct DiskState {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut disk = lock(&self.0);
            let n = buf.len().min(disk.room);
            if n == 0 && !buf.is_empty() {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            disk.room -= n;
            disk.bytes.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// One writer's buffer and the writing thread's state, driven a round at a
    /// time over a [`Disk`].
    struct Rig {
        shared: Arc<Shared>,
        buffer: Arc<Mutex<Vec<u8>>>,
        disk: Disk,
        output: Output,
        batch: Vec<u8>,
    }

    impl Rig {
        fn new() -> Rig {
            let shared = unstarted();
            let buffer = Arc::new(Mutex::new(Vec::new()));
            lock(&shared.buffers).push(buffer.clone());
            let disk = Disk::default();
            let output = Output::new(Box::new(disk.clone()));
            Rig { shared, buffer, disk, output, batch: Vec::new() }
        }

        /// Buffers `lines`, leaves the disk `room` bytes, and writes a round.
        fn round(&mut self, lines: &str, room: usize) {
            lock(&self.buffer).extend_from_slice(lines.as_bytes());
            lock(&self.disk.0).room = room;
            self.output.round(&self.shared, &mut self.batch);
        }

        fn written(&self) -> String {
            String::from_utf8(lock(&self.disk.0).bytes.clone()).unwrap()
        }

        fn dropped(&self) -> u64 {
            self.shared.dropped.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn a_line_cut_short_by_a_full_disk_is_ended_before_the_next_and_counted() {
        let mut rig = Rig::new();
        rig.round("aaaa\nbbbb\ncccc\n", 7);
        assert_eq!(rig.written(), "aaaa\nbb");
        assert_eq!(rig.dropped(), 2, "the cut line and the one not written");
        // Still full: not even the newline gets out, and the whole batch is lost.
        rig.round("dddd\n", 0);
        assert_eq!(rig.written(), "aaaa\nbb");
        assert_eq!(rig.dropped(), 3);
        assert_eq!(rig.output.reported_drops, 0, "reported while failing");
        rig.round("eeee\nffff\n", 100);
        assert_eq!(rig.written(), "aaaa\nbb\neeee\nffff\n", "no line glued to the cut one");
        assert_eq!(rig.dropped(), 3);
        assert!(!rig.output.failing);
        assert_eq!(rig.output.reported_drops, 3, "the recovery reports the lost lines");
        rig.round("gggg\n", 100);
        assert_eq!(rig.written(), "aaaa\nbb\neeee\nffff\ngggg\n");
    }

    #[test]
    fn a_write_failing_at_a_line_end_adds_no_newline() {
        let mut rig = Rig::new();
        rig.round("aaaa\nbbbb\n", 5);
        assert_eq!(rig.written(), "aaaa\n");
        assert_eq!(rig.dropped(), 1);
        rig.round("cccc\n", 100);
        assert_eq!(rig.written(), "aaaa\ncccc\n");
        assert_eq!(rig.dropped(), 1);
    }
}
