//! Request targets to files (src/conn.rs `split_target`, src/files/resolve.rs):
//! split, percent-decode, normalise and open under a root, as a request reaches the
//! static-file handler. The root (a temporary directory) holds a few files, a
//! directory without an index, a dotfile and symlinks: one inside the root, and
//! relative, absolute and directory symlinks pointing outside it, next to a secret.
//!
//! Invariants: decoding never grows a path and is the identity without `%`; a
//! normalised path is relative with no empty, `.`, `..` or dot segments, no NUL or
//! backslash, and normalises to itself; whatever is opened lies under the root and
//! is never the secret; a path that normalisation refuses is never opened.
#![no_main]

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spindle::fuzz_api::{normalize, percent_decode, split_target, Resolved, Root};

const SECRET: &[u8] = b"secret outside the root";

struct Site {
    root: Root,
    /// Kept so the directory lives as long as the process.
    _dir: tempfile::TempDir,
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        let root = base.join("root");
        let write = |p: PathBuf, s: &[u8]| std::fs::write(p, s).expect("write");
        let link = |to: PathBuf, at: &str| std::os::unix::fs::symlink(to, root.join(at)).expect("symlink");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::create_dir_all(root.join("empty")).expect("mkdir");
        std::fs::create_dir_all(base.join("outside")).expect("mkdir");
        write(base.join("secret.txt"), SECRET);
        write(base.join("outside/index.html"), SECRET);
        write(base.join("outside/secret.txt"), SECRET);
        write(root.join("index.html"), b"home");
        write(root.join("a.txt"), b"a");
        write(root.join("sub/b.txt"), b"b");
        write(root.join("sub/index.html"), b"sub");
        write(root.join(".hidden"), b"dotfile");
        link("../secret.txt".into(), "up");
        link(base.join("secret.txt"), "abs");
        link("../outside".into(), "updir");
        link(base.join("outside"), "absdir");
        link("a.txt".into(), "inner");
        link("sub".into(), "innerdir");
        link("loop".into(), "loop");
        Site { root: Root::open(&root).expect("root"), _dir: dir }
    })
}

fuzz_target!(|target: &[u8]| {
    let site = site();
    let (mut decoded, mut normal, mut scratch) = (Vec::new(), Vec::new(), Vec::new());

    if let Some((path, query)) = split_target(target) {
        assert!(path.0 <= path.1 && path.1 <= target.len(), "path span {path:?}");
        if let Some(q) = query {
            assert!(path.1 <= q.0 && q.0 <= q.1 && q.1 <= target.len(), "query span {q:?}");
        }
    }

    if percent_decode(target, &mut decoded) {
        assert!(decoded.len() <= target.len());
        if !target.contains(&b'%') {
            assert_eq!(decoded, target);
        }
        if let Some(_slash) = normalize(&decoded, &mut normal) {
            check_normal(&normal);
            // Normalising again changes nothing.
            let mut again = vec![b'/'];
            again.extend_from_slice(&normal);
            let mut twice = Vec::new();
            assert!(normalize(&again, &mut twice).is_some(), "normal form refused: {normal:?}");
            assert_eq!(twice, normal);
        } else if decoded.first() == Some(&b'/') {
            assert!(site.root.resolve(&decoded, &mut scratch).is_err(), "refused path opened: {decoded:?}");
        }
    } else {
        assert!(target.contains(&b'%'), "decoding failed without an escape");
    }

    match site.root.resolve_target(target, &mut decoded, &mut scratch) {
        Ok(Resolved::File(mut f)) => {
            check_normal(&scratch);
            check_under_root(&f, site.root.path());
            let mut contents = Vec::new();
            f.read_to_end(&mut contents).expect("read");
            assert_ne!(contents, SECRET, "served the secret for {target:?}");
        }
        Ok(Resolved::Directory(d)) => {
            check_normal(&scratch);
            check_under_root(&d, site.root.path());
        }
        Ok(Resolved::AddSlash) | Err(_) => {}
    }
});

/// A normalised path: relative, no empty, `.`, `..` or dot segments, no NUL or backslash.
fn check_normal(path: &[u8]) {
    assert!(!path.contains(&0) && !path.contains(&b'\\'), "{path:?}");
    if path.is_empty() {
        return;
    }
    for segment in path.split(|&b| b == b'/') {
        assert!(!segment.is_empty() && segment[0] != b'.', "segment {segment:?} in {path:?}");
    }
}

fn check_under_root(f: &std::fs::File, root: &std::path::Path) {
    let real = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("readlink");
    assert!(real.starts_with(root), "opened {real:?}, outside {root:?}");
}
