//! The open-file cache (nginx's `open_file_cache`): the contents of hot small
//! files and of their precompressed siblings, or the open descriptors of larger
//! ones, with their type and validators, revalidated with one `statx` at most
//! once per revalidation interval, so an unchanged file costs no open, read or
//! close, and a changed one is noticed within the interval.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use crate::response::SharedFields;

use super::conditional::Validators;
use super::encoding::Coding;

/// Files up to this size are cached by contents; larger ones by descriptor.
pub(crate) const MAX_FILE: u64 = 64 * 1024;
/// Most entries kept.
const MAX_ENTRIES: usize = 1024;
/// Most content bytes kept.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most descriptors kept open.
const MAX_DESCRIPTORS: usize = 128;
/// A descriptor not confirmed for this long beyond the revalidation interval is
/// closed when another file is cached (so that a deleted file's space is not
/// held for ever). A hot file is confirmed at least once per interval.
const INACTIVE: Duration = Duration::from_secs(60);

/// What identifies one version of a file: a change to any of these is a new file.
/// The change time catches what the others miss: a rewrite of the same size
/// whose modification time was set back (`cp -p`, `touch -d`), or a new mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Identity {
    /// The identity in `meta`.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ctime: (meta.ctime(), meta.ctime_nsec() as u32),
        }
    }
}

/// What a cached file is answered with.
#[derive(Debug)]
pub(crate) enum Contents {
    /// A small file's bytes.
    Bytes(Arc<[u8]>),
    /// A larger file's open descriptor, shared by the responses sending it (they
    /// read at explicit offsets, never through the shared file position).
    Descriptor(Arc<File>),
}

impl Contents {
    /// Content bytes held in memory.
    fn bytes(&self) -> usize {
        match self {
            Contents::Bytes(b) => b.len(),
            Contents::Descriptor(_) => 0,
        }
    }

    fn is_descriptor(&self) -> bool {
        matches!(self, Contents::Descriptor(_))
    }
}

/// A cached file.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The file's path below the root, NUL-terminated (for `statx`).
    pub path: Box<[u8]>,
    pub identity: Identity,
    pub contents: Contents,
    pub validators: Validators,
    /// The header fields of a 200 for it (type, validators, cache fields), encoded once.
    pub ok_fields: Arc<SharedFields>,
    /// The header fields of a 304 for it (the same without the type).
    pub not_modified_fields: Arc<SharedFields>,
    /// When the identity was last found unchanged.
    pub checked: Stamp,
    /// The file's precompressed siblings as last looked for (`None` for a
    /// sibling's own entry, or when precompressed siblings are off).
    pub siblings: Option<Siblings>,
}

/// The precompressed siblings beside a file (`NAME.br`, `NAME.gz`), as last
/// looked for. A client that accepts a coding is answered from the entry of the
/// first sibling it accepts (kept under [`coded_key`]) only while that sibling
/// has the identity found here; from the file's own entry when it accepts none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Siblings {
    /// When they were looked for.
    pub checked: Stamp,
    /// Each coding's sibling, in [`Coding::ALL`] order: its identity, if present.
    pub found: [Option<Identity>; Coding::ALL.len()],
}

impl Siblings {
    /// Whether any sibling is present (its file's responses then carry `Vary: Accept-Encoding`).
    pub(crate) fn any(&self) -> bool {
        self.found.iter().any(Option::is_some)
    }
}

/// Makes a file's key (its normalised path and a trailing-slash byte, 0 or 1)
/// the key of its sibling in coding `c`: a byte above those two, so no file's
/// key is also a sibling's.
pub(crate) fn coded_key(key: &mut Vec<u8>, c: Coding) {
    key.push(2 + c.index() as u8);
}

/// A reading of the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`:
/// a few milliseconds of resolution, read without touching the hardware clock).
/// Enough for revalidation intervals, and read on every cached response, where
/// `Instant::now()` showed in profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(Duration);

impl Stamp {
    /// Now.
    pub(crate) fn now() -> Stamp {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec through a valid pointer; this
        // clock exists on every Linux since 2.6.32 (zero on the impossible failure).
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        Stamp(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// Time since `self` (zero if the clock reads earlier).
    pub(crate) fn elapsed(self) -> Duration {
        Stamp::now().since(self)
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// Cached files by normalised request path (plus a trailing-slash byte), and
/// their precompressed siblings by [`coded_key`].
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    entries: rustc_hash::FxHashMap<Box<[u8]>, Entry>,
    bytes: usize,
    descriptors: usize,
    /// How long entries are trusted before they are checked again.
    revalidate_after: Duration,
}

impl FileCache {
    /// An empty cache whose entries are checked again after `revalidate_after`.
    pub(crate) fn new(revalidate_after: Duration) -> FileCache {
        FileCache { revalidate_after, ..FileCache::default() }
    }

    /// The entry for `key`.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    /// Forgets the file under `key` (it changed or vanished) and its siblings' entries.
    pub(crate) fn remove_file(&mut self, key: &mut Vec<u8>) {
        self.remove(key);
        let len = key.len();
        for c in Coding::ALL {
            coded_key(key, c);
            self.remove(key);
            key.truncate(len);
        }
    }

    /// Forgets the entry under `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.contents.bytes();
            self.descriptors -= usize::from(old.contents.is_descriptor());
        }
    }

    /// Keeps `entry` under `key`, making room by dropping other entries (for a
    /// descriptor, first those not confirmed for a while, then any other descriptor).
    pub(crate) fn insert(&mut self, key: &[u8], entry: Entry) {
        self.remove(key);
        let descriptor = entry.contents.is_descriptor();
        if descriptor {
            let inactive = INACTIVE.saturating_add(self.revalidate_after);
            self.close_descriptors(|e| e.checked.elapsed() >= inactive);
            while self.descriptors >= MAX_DESCRIPTORS {
                let Some(victim) =
                    self.entries.iter().find(|(_, e)| e.contents.is_descriptor()).map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.remove(&victim);
            }
        }
        while self.entries.len() >= MAX_ENTRIES || self.bytes + entry.contents.bytes() > MAX_BYTES {
            let Some(victim) = self.entries.keys().next().cloned() else { break };
            self.remove(&victim);
        }
        self.bytes += entry.contents.bytes();
        self.descriptors += usize::from(descriptor);
        self.entries.insert(key.into(), entry);
    }

    /// Closes the cached descriptors of the entries `which` selects (responses
    /// still sending one keep it open until they are done); whether any were closed.
    pub(crate) fn close_descriptors(&mut self, which: impl Fn(&Entry) -> bool) -> bool {
        let mut closed = 0;
        self.entries.retain(|_, e| {
            let close = e.contents.is_descriptor() && which(e);
            closed += usize::from(close);
            !close
        });
        self.descriptors -= closed;
        closed > 0
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn descriptors(&self) -> usize {
        self.entries.values().filter(|e| e.contents.is_descriptor()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(size: usize) -> Entry {
        with_contents(Contents::Bytes(vec![0; size].into()))
    }

    fn descriptor() -> Entry {
        with_contents(Contents::Descriptor(Arc::new(File::open("/dev/null").unwrap())))
    }

    fn with_contents(contents: Contents) -> Entry {
        let size = contents.bytes();
        Entry {
            path: b"x\0".to_vec().into(),
            identity: Identity { dev: 1, ino: 2, len: size as u64, mtime: (3, 4), ctime: (3, 4) },
            contents,
            validators: Validators::new(size as u64, UNIX_EPOCH, ""),
            ok_fields: SharedFields::new(&[]),
            not_modified_fields: SharedFields::new(&[]),
            checked: Stamp::now(),
            siblings: None,
        }
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let mut cache = FileCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(format!("k{i}").as_bytes(), entry(1));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        let big = MAX_BYTES / 4 + 1;
        for i in 0..5 {
            cache.insert(format!("big{i}").as_bytes(), entry(big));
        }
        assert!(cache.bytes <= MAX_BYTES);
        cache.insert(b"k", entry(10));
        cache.insert(b"k", entry(20));
        assert_eq!(cache.get_mut(b"k").map(|e| e.contents.bytes()), Some(20));
    }

    #[test]
    fn descriptors_are_bounded_and_closed_on_demand() {
        let mut cache = FileCache::default();
        for i in 0..10 {
            cache.insert(format!("small{i}").as_bytes(), entry(1));
        }
        for i in 0..MAX_DESCRIPTORS + 5 {
            cache.insert(format!("big{i}").as_bytes(), descriptor());
        }
        // Descriptors made room among themselves: the small files stayed.
        assert_eq!((cache.descriptors(), cache.descriptors), (MAX_DESCRIPTORS, MAX_DESCRIPTORS));
        assert_eq!(cache.len(), MAX_DESCRIPTORS + 10);
        // Replacing an entry keeps the count right.
        cache.insert(b"big0", entry(3));
        cache.insert(b"big1", descriptor());
        assert_eq!(cache.descriptors, cache.descriptors());
        assert!(cache.close_descriptors(|_| true));
        assert_eq!((cache.descriptors, cache.len()), (0, 11));
        assert!(!cache.close_descriptors(|_| true));
    }

    #[test]
    fn inactive_descriptors_are_closed_when_another_is_cached() {
        let mut cache = FileCache::default();
        let mut stale = descriptor();
        stale.checked = Stamp(Stamp::now().0.saturating_sub(INACTIVE));
        assert!(stale.checked.elapsed() >= INACTIVE, "up for less than {INACTIVE:?}");
        cache.insert(b"stale", stale);
        cache.insert(b"fresh", descriptor());
        assert!(cache.get_mut(b"stale").is_none());
        assert!(cache.get_mut(b"fresh").is_some());
        assert_eq!(cache.descriptors, 1);
    }

    #[test]
    fn descriptors_within_a_long_revalidation_interval_are_not_inactive() {
        // Confirmed INACTIVE ago, but trusted for two minutes: a hot file, kept open.
        let mut cache = FileCache::new(Duration::from_secs(120));
        let mut hot = descriptor();
        hot.checked = Stamp(Stamp::now().0.saturating_sub(INACTIVE));
        cache.insert(b"hot", hot);
        cache.insert(b"other", descriptor());
        assert!(cache.get_mut(b"hot").is_some());
        assert_eq!(cache.descriptors, 2);
    }
}
