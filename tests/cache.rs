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

#[test]
fn cached_listings_follow_the_directory_and_the_validity_interval() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("d")).unwrap();
    std::fs::write(root.path().join("d/a.txt"), "a").unwrap();
    let files = StaticFiles::new(root.path()).unwrap().listing(true).revalidate_after(Duration::from_secs(3600));
    let server = serve(files);
    let first = get(server.addr, "/d/");
    assert_eq!(first.status, 200);
    assert!(first.text().contains("a.txt"));
    // Served from the cache now: same bytes.
    assert_eq!(get(server.addr, "/d/").text(), first.text());
    // An entry added changes the directory: listed at once, despite the long interval.
    std::fs::write(root.path().join("d/b.txt"), "b").unwrap();
    assert!(get(server.addr, "/d/").text().contains("b.txt"), "a new entry was not listed");
    // Options are cached apart: JSON is not served the HTML and vice versa.
    let json = get(server.addr, "/d/?format=json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert!(json.text().starts_with('['), "{}", json.text());
    assert!(get(server.addr, "/d/").text().starts_with("<!DOCTYPE html>"));
}

#[test]
fn listings_are_fresh_on_every_request_by_default() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("d")).unwrap();
    let file = root.path().join("d/a.txt");
    std::fs::write(&file, "a").unwrap();
    let server = serve(StaticFiles::new(root.path()).unwrap().listing(true));
    let size = |text: String| text.contains(r#""size":1,"#);
    assert!(size(get(server.addr, "/d/?format=json").text()));
    // A size change does not touch the directory's own metadata.
    std::fs::write(&file, "abc").unwrap();
    assert!(get(server.addr, "/d/?format=json").text().contains(r#""size":3,"#), "stale listing");

    let server =
        serve(StaticFiles::new(root.path()).unwrap().listing(true).revalidate_after(Duration::from_millis(300)));
    assert!(get(server.addr, "/d/?format=json").text().contains(r#""size":3,"#));
    std::fs::write(&file, "abcde").unwrap();
    let fresh =
        wait_for(Duration::from_secs(3), || get(server.addr, "/d/?format=json").text().contains(r#""size":5,"#));
    assert!(fresh, "the size change was not listed within the validity interval");
}
