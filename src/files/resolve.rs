//! Finding files under a root directory: path resolution that cannot escape the
//! root, `index.html` for directories, and the content type of what was found.
//!
//! Resolution opens the file relative to a descriptor of the root with
//! `openat2(RESOLVE_BENEATH)`, so `..`, absolute symlinks and symlinks that lead
//! out of the root are refused by the kernel itself; where `openat2` is missing
//! (old kernels, some seccomp profiles) the opened file's real path is checked
//! against the root's instead.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::time::SystemTime;

use crate::scan;
use crate::status::Status;

/// Why a path could not be served.
#[derive(Debug)]
pub(crate) enum FileError {
    /// Nothing there (404).
    NotFound,
    /// Outside the root, a dotfile, or not a regular file (403).
    Forbidden,
    /// The file system refused to open it to this process (403, and worth telling
    /// the operator: it is usually a permission mistake).
    Denied,
    /// Out of file descriptors (503).
    Exhausted,
    /// Any other I/O failure (500).
    Io(io::Error),
}

impl FileError {
    /// The response status for this error.
    pub(crate) fn status(&self) -> Status {
        match self {
            FileError::NotFound => Status::NOT_FOUND,
            FileError::Forbidden | FileError::Denied => Status::FORBIDDEN,
            FileError::Exhausted => Status::SERVICE_UNAVAILABLE,
            FileError::Io(_) => Status::INTERNAL_SERVER_ERROR,
        }
    }

    fn from_io(e: io::Error) -> FileError {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => FileError::NotFound,
            Some(libc::EXDEV | libc::ELOOP | libc::ENXIO) => FileError::Forbidden,
            Some(libc::EACCES | libc::EPERM) => FileError::Denied,
            Some(libc::EMFILE | libc::ENFILE) => FileError::Exhausted,
            _ => FileError::Io(e),
        }
    }
}

/// A regular file ready to be sent.
#[derive(Debug)]
pub(crate) struct OpenFile {
    pub file: File,
    pub len: u64,
    pub modified: SystemTime,
    /// `Content-Type` media type, from the file name.
    pub mime: &'static str,
    /// Whether the type is text, to be labelled `charset=utf-8`.
    pub text: bool,
}

/// The outcome of a successful lookup.
#[derive(Debug)]
pub(crate) enum Found {
    /// A file to send.
    File(OpenFile),
    /// A directory asked for without its trailing slash: redirect to the path
    /// left in the scratch buffer (relative to the root, no leading slash) plus `/`.
    AddSlash,
    /// A directory without `index.html` (the scratch buffer holds its path).
    Directory(File),
}

/// A root directory, opened once; files are opened relative to it.
#[derive(Debug)]
pub(crate) struct Root {
    root: OwnedFd,
    root_path: PathBuf,
    /// The directory's device and inode, to tell when its path names another.
    id: (u64, u64),
    beneath: bool,
}

impl Root {
    /// Opens `root`, which must be a directory.
    pub(crate) fn open(root: &Path) -> io::Result<Root> {
        let root_path = root.canonicalize()?;
        let c_root = cstring(root_path.as_os_str().as_bytes())?;
        // SAFETY: c_root is NUL-terminated; the returned descriptor is checked.
        let fd = unsafe { libc::open(c_root.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly opened descriptor we own.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: fstat writes one stat through a valid pointer (all-zero is a valid value).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `root` is an open descriptor (O_PATH descriptors can be fstat'ed).
        if unsafe { libc::fstat(root.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let id = (st.st_dev, st.st_ino);
        let mut files = Root { root, root_path, id, beneath: true };
        files.beneath = match files.open_beneath(c".") {
            Ok(_) => true,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                log::warn!("openat2 unavailable ({e}); checking real paths instead");
                false
            }
            Err(e) => return Err(e),
        };
        Ok(files)
    }

    /// The canonical root directory.
    pub(crate) fn path(&self) -> &Path {
        &self.root_path
    }

    /// Whether `path` (as [`open`](Root::open) was given it) still names this
    /// directory: false once it names another (a symlink moved to a new release,
    /// the directory re-created), or nothing.
    pub(crate) fn is_at(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|meta| dir_id(&meta) == self.id)
    }

    /// Resolves the percent-decoded request path `path` (starting with `/`).
    ///
    /// `scratch` is overwritten with the normalised path relative to the root:
    /// of the file found (`index.html` included), or of the directory.
    pub(crate) fn resolve(&self, path: &[u8], scratch: &mut Vec<u8>) -> Result<Found, FileError> {
        let trailing_slash = normalize(path, scratch)?;
        let file = self.open_rel(scratch, b".")?;
        let mut meta = file.metadata().map_err(FileError::from_io)?;
        let mut file = file;
        if meta.is_dir() {
            if !trailing_slash {
                return Ok(Found::AddSlash);
            }
            let dir_len = scratch.len();
            if !scratch.is_empty() {
                scratch.push(b'/');
            }
            scratch.extend_from_slice(b"index.html");
            match self.open_rel(scratch, b"") {
                Err(FileError::NotFound) => {
                    scratch.truncate(dir_len);
                    return Ok(Found::Directory(file));
                }
                other => file = other?,
            }
            meta = file.metadata().map_err(FileError::from_io)?;
        } else if trailing_slash {
            return Err(FileError::NotFound);
        }
        self.file(file, &meta, scratch).map(Found::File)
    }

    /// Opens the regular file at `rel` (relative to the root, not normalised
    /// again: callers pass paths built from [`resolve`](Root::resolve)'s output).
    pub(crate) fn open_file(&self, rel: &mut Vec<u8>) -> Result<OpenFile, FileError> {
        let file = self.open_rel(rel, b"")?;
        let meta = file.metadata().map_err(FileError::from_io)?;
        self.file(file, &meta, rel)
    }

    fn file(&self, file: File, meta: &std::fs::Metadata, path: &[u8]) -> Result<OpenFile, FileError> {
        if !meta.is_file() {
            return Err(FileError::Forbidden);
        }
        let name = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
        let (mime, text) = content_type(name);
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(OpenFile { file, len: meta.len(), modified, mime, text })
    }

    /// The identity of the regular file at `rel` (NUL-terminated, below the root,
    /// symlinks followed), or `None` when there is none or it cannot be had. Only
    /// when paths are resolved with `openat2`: a cached file is trusted only while
    /// its identity holds.
    pub(crate) fn identity(&self, rel: &[u8]) -> Option<super::cache::Identity> {
        if !self.beneath {
            return None;
        }
        let path = CStr::from_bytes_with_nul(rel).ok()?;
        // SAFETY: statx is plain data; all-zero is a valid value to be overwritten.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `stx` a valid out-pointer.
        let rc = unsafe { libc::statx(self.root.as_raw_fd(), path.as_ptr(), 0, libc::STATX_BASIC_STATS, &mut stx) };
        let regular = u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFREG;
        (rc == 0 && regular).then(|| super::cache::Identity {
            dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
            ino: stx.stx_ino,
            len: stx.stx_size,
            mtime: (stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec),
            ctime: (stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec),
        })
    }

    /// The same root, resolving paths as where `openat2` is unavailable.
    #[cfg(test)]
    pub(crate) fn without_openat2(mut self) -> Root {
        self.beneath = false;
        self
    }

    /// Whether files can be cached (their identity checked by path).
    pub(crate) fn can_cache(&self) -> bool {
        self.beneath
    }

    /// Opens `rel` (or `empty` when `rel` is empty) below the root, read-only and non-blocking.
    fn open_rel(&self, rel: &mut Vec<u8>, empty: &[u8]) -> Result<File, FileError> {
        let len = rel.len();
        if len == 0 {
            rel.extend_from_slice(empty);
        }
        rel.push(0);
        let result = match CStr::from_bytes_with_nul(rel) {
            Ok(c) => self.open_beneath(c).map_err(FileError::from_io),
            Err(_) => Err(FileError::Forbidden),
        };
        rel.truncate(len);
        result
    }

    fn open_beneath(&self, rel: &CStr) -> io::Result<File> {
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
        let fd = if self.beneath {
            // SAFETY: open_how is plain integers; all-zero is its documented default.
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = flags as u64;
            how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
            // SAFETY: `how` is a valid open_how of the size passed; `rel` is NUL-terminated.
            unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.root.as_raw_fd(),
                    rel.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                ) as libc::c_int
            }
        } else {
            // SAFETY: `rel` is NUL-terminated; the result is checked below.
            unsafe { libc::openat(self.root.as_raw_fd(), rel.as_ptr(), flags) }
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly opened descriptor we own.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        if !self.beneath {
            let real = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
            if !real.starts_with(&self.root_path) {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
        }
        Ok(file)
    }
}

/// The device and inode of a directory.
fn dir_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

fn cstring(bytes: &[u8]) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Normalises a decoded absolute path into `out` (relative, `/`-separated, no `.`
/// or `..` segments). Refuses NUL bytes, backslashes, dotfiles and any `..` that
/// would climb above the root. Returns whether the path ends with a slash.
///
/// One dot directory is let through: [`WELL_KNOWN`] as the first segment, the
/// home of ACME challenges and `security.txt` (RFC 8615); dotfiles inside it are
/// still refused.
pub(crate) fn normalize(path: &[u8], out: &mut Vec<u8>) -> Result<bool, FileError> {
    // Most paths are normal already: those are copied in one piece.
    if already_normal(path) {
        out.clear();
        let rest = path.get(1..).unwrap_or_default();
        let trailing_slash = rest.is_empty() || rest.ends_with(b"/");
        out.extend_from_slice(rest.strip_suffix(b"/").unwrap_or(rest));
        return Ok(trailing_slash);
    }
    normalize_segments(path, out)
}

/// Whether `normalize` has nothing to do for `path` but drop its leading slash:
/// it starts with `/` and has no empty, `.`, `..` or dot segment (no `/` followed
/// by `/` or `.`) and no byte refused.
fn already_normal(path: &[u8]) -> bool {
    // What each byte is: refused anywhere, a slash, or refused right after a slash.
    const REFUSED: u8 = 1;
    const SLASH: u8 = 2;
    const NOT_AFTER_SLASH: u8 = 4;
    const CLASS: [u8; 256] = {
        let mut class = [0; 256];
        class[0] = REFUSED;
        class[b'\\' as usize] = REFUSED;
        class[b'/' as usize] = SLASH | NOT_AFTER_SLASH;
        class[b'.' as usize] = NOT_AFTER_SLASH;
        class
    };
    if path.first() != Some(&b'/') {
        return false;
    }
    // Eight bytes at a time: 0x80 marks a byte refused, or refused after a slash.
    let mut chunks = path.chunks_exact(8);
    let mut slash_before = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let slashes = scan::eq_mask(word, b'/');
        let after_slash = slashes << 8 | slash_before;
        let refused = scan::eq_mask(word, 0) | scan::eq_mask(word, b'\\');
        if refused | after_slash & (slashes | scan::eq_mask(word, b'.')) != 0 {
            return false;
        }
        slash_before = slashes >> 56;
    }
    // The rest a byte at a time. `after_slash` is NOT_AFTER_SLASH when the
    // previous byte was a slash.
    let (mut bad, mut after_slash) = (0, if slash_before != 0 { NOT_AFTER_SLASH } else { 0 });
    for &b in chunks.remainder() {
        let class = CLASS[usize::from(b)];
        bad |= class & (REFUSED | after_slash);
        after_slash = (class & SLASH) << 1;
    }
    bad == 0
}

/// The directory of well-known URIs (RFC 8615), served at the top of a root
/// although it is a dot directory.
const WELL_KNOWN: &[u8] = b".well-known";

/// [`normalize`], segment by segment.
fn normalize_segments(path: &[u8], out: &mut Vec<u8>) -> Result<bool, FileError> {
    out.clear();
    if path.first() != Some(&b'/') || path.iter().any(|&b| b == 0 || b == b'\\') {
        return Err(FileError::Forbidden);
    }
    let mut trailing_slash = true;
    for segment in path.split(|&b| b == b'/') {
        trailing_slash = segment.is_empty() || segment == b".";
        match segment {
            b"" | b"." => {}
            b".." => {
                trailing_slash = true;
                if out.is_empty() {
                    return Err(FileError::Forbidden);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            WELL_KNOWN if out.is_empty() => out.extend_from_slice(segment),
            [b'.', ..] => return Err(FileError::Forbidden),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(segment);
            }
        }
    }
    Ok(trailing_slash)
}

/// Percent-decodes `raw` into `out` once (RFC 3986 §2.1). `None` for a malformed escape.
pub(crate) fn percent_decode(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut rest = raw;
    // The bytes between escapes are copied a run at a time: most paths have none.
    while let Some(at) = scan::find(rest, b'%') {
        out.extend_from_slice(&rest[..at]);
        let hi = hex(*rest.get(at + 1)?)?;
        let lo = hex(*rest.get(at + 2)?)?;
        out.push(hi << 4 | lo);
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    Some(())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Appends `bytes` to `out`, percent-encoding what may not appear in a URL path.
pub(crate) fn push_encoded(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The media type for a file name, and whether it is text.
pub(crate) fn content_type(name: &[u8]) -> (&'static str, bool) {
    let ext = name.iter().rposition(|&b| b == b'.').map(|i| &name[i + 1..]);
    let mime = ext
        .and_then(|e| std::str::from_utf8(e).ok())
        .and_then(|e| mime_guess::from_ext(e).first_raw())
        .unwrap_or("application/octet-stream");
    let text = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "image/svg+xml"
                | "application/manifest+json"
        );
    (mime, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<(String, bool), ()> {
        let mut out = Vec::new();
        normalize(p.as_bytes(), &mut out).map(|t| (String::from_utf8(out).unwrap(), t)).map_err(|_| ())
    }

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(norm("/"), Ok((String::new(), true)));
        assert_eq!(norm("/a/b.txt"), Ok(("a/b.txt".into(), false)));
        assert_eq!(norm("//a/./b/"), Ok(("a/b".into(), true)));
        assert_eq!(norm("/a/../b"), Ok(("b".into(), false)));
        assert_eq!(norm("/a/.."), Ok((String::new(), true)));
        assert_eq!(norm("/.well-known/acme-challenge/x"), Ok((".well-known/acme-challenge/x".into(), false)));
        assert_eq!(norm("/.well-known/"), Ok((".well-known".into(), true)));
        assert_eq!(norm("//./a/../.well-known"), Ok((".well-known".into(), false)));
        for bad in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/.git/config",
            "/a/.env",
            "/a\\..\\b",
            "/a\0b",
            "a",
            "/a/.well-known/x",
            "/.well-known/.env",
            "/.well-known/../.env",
            "/.well-knownx/y",
        ] {
            assert_eq!(norm(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn the_one_piece_copy_agrees_with_the_segment_walk_for_every_short_path() {
        // 0xaf is `/` with the high bit set: the check must not take it for one.
        let alphabet = [b'/', b'.', b'a', b'\\', 0, 0xaf];
        let mut paths: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let longer: Vec<Vec<u8>> = paths
                .iter()
                .filter(|p| p.len() == paths.last().map_or(0, Vec::len))
                .flat_map(|p| alphabet.iter().map(move |&b| [p.as_slice(), &[b]].concat()))
                .collect();
            paths.extend(longer);
        }
        // The same behind longer prefixes, and before a suffix: the bytes land on
        // each side of the eight-byte words' boundaries, between two full words too.
        let prefixed: Vec<Vec<u8>> = [&b"/abcde"[..], b"/abcdef", b"/abcdefghijkl"]
            .iter()
            .flat_map(|prefix| {
                paths.iter().flat_map(move |p| [[*prefix, p.as_slice()].concat(), [*prefix, p, b"zzzzzzzzz"].concat()])
            })
            .collect();
        let (mut fast, mut walked) = (Vec::new(), Vec::new());
        for path in paths.iter().chain(&prefixed) {
            let a = normalize(path, &mut fast).map_err(|e| e.status());
            let b = normalize_segments(path, &mut walked).map_err(|e| e.status());
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(path));
            if a.is_ok() {
                assert_eq!(fast, walked, "{:?}", String::from_utf8_lossy(path));
            }
        }
    }

    #[test]
    fn decodes_once() {
        let mut out = Vec::new();
        percent_decode(b"/a%20b%2fc%252e", &mut out).unwrap();
        assert_eq!(out, b"/a b/c%2e");
        assert!(percent_decode(b"/%zz", &mut out).is_none());
        assert!(percent_decode(b"/%2", &mut out).is_none());
    }

    #[test]
    fn encodes_paths() {
        let mut s = String::new();
        push_encoded(&mut s, "a b/é?#%".as_bytes());
        assert_eq!(s, "a%20b/%C3%A9%3F%23%25");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(b"index.html"), ("text/html", true));
        assert_eq!(content_type(b"a.png"), ("image/png", false));
        assert_eq!(content_type(b"noext"), ("application/octet-stream", false));
        assert_eq!(content_type(b"x.unknownext"), ("application/octet-stream", false));
        assert!(content_type(b"app.js").1);
    }
}
