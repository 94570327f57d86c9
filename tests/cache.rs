//! The open-file cache: hot small files come from memory, yet a changed or
//! removed file is noticed at once (default) or within the validity interval.

mod common;

use std::time::Duration;

use common::*;
use spindle::{Config, Router, StaticFiles};

fn serve(files: StaticFiles) -> TestServer {
    TestServer::with_router(Router::new().fallback(files), Config::default())
}

#[test]
fn changes_are_served_at_once_by_default() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let path = root.path().join("style.css");
    for round in 0..5 {
        // Sizes differ: two writes within one file-timestamp tick (a few ms) with
        // equal sizes are indistinguishable by stat, for nginx's cache as for this one.
        let body = format!("round {}\n", "x".repeat(round));
        std::fs::write(&path, &body).unwrap();
        // Twice: the first request may fill the cache, the second must come from it.
        assert_eq!(get(server.addr, "/style.css").text(), body);
        assert_eq!(get(server.addr, "/style.css").text(), body);
    }
    std::fs::remove_file(&path).unwrap();
    assert_eq!(get(server.addr, "/style.css").status, 404);
    // Replaced by a directory: no stale file.
    std::fs::create_dir(&path).unwrap();
    assert_eq!(get(server.addr, "/style.css").status, 301);
}

#[test]
fn a_validity_interval_serves_changes_within_it() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(Duration::from_millis(300)));
    let path = root.path().join("index.html");
    let before = get(server.addr, "/").text();
    assert_eq!(get(server.addr, "/").text(), before);
    std::fs::write(&path, "changed\n").unwrap();
    let fresh = wait_for(Duration::from_secs(3), || get(server.addr, "/").text() == "changed\n");
    assert!(fresh, "the change was not served within the validity interval");
}

#[test]
fn without_the_cache_files_are_read_each_time() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().file_cache(false));
    let path = root.path().join("sub/page.txt");
    for round in 0..3 {
        let body = "y".repeat(round);
        std::fs::write(&path, &body).unwrap();
        assert_eq!(get(server.addr, "/sub/page.txt").text(), body);
    }
}
