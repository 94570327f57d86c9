//! Micro-benchmarks of the per-request CPU work: parsing a head, writing a
//! response head, and decoding and normalising a path.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use spindle::bench_api;

const WRK_REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER_REQUEST: &[u8] = b"GET /assets/app.css?v=3 HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/css,*/*;q=0.1\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Referer: https://example.com/\r\n\
Sec-Fetch-Dest: style\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
If-Modified-Since: Sat, 21 Nov 2026 06:00:00 GMT\r\n\r\n";

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_head");
    for (name, req) in [("wrk", WRK_REQUEST), ("browser", BROWSER_REQUEST)] {
        g.throughput(Throughput::Bytes(req.len() as u64));
        g.bench_function(name, |b| b.iter(|| bench_api::parse_head(black_box(req))));
    }
    g.finish();
}

fn response_head(c: &mut Criterion) {
    let mut buf = Vec::with_capacity(512);
    c.bench_function("write_file_head", |b| {
        b.iter(|| {
            buf.clear();
            bench_api::write_file_head(&mut buf, b"Sat, 21 Nov 2026 06:00:00 GMT", black_box(1024));
            buf.len()
        })
    });
}

fn path(c: &mut Criterion) {
    let (mut decoded, mut out) = (Vec::new(), Vec::new());
    let mut g = c.benchmark_group("resolve_path");
    for (name, raw) in [("short", &b"/index.html"[..]), ("encoded", b"/docs/a%20b/./c/../%C3%A9t%C3%A9.html")] {
        g.bench_function(name, |b| b.iter(|| bench_api::resolve_path(black_box(raw), &mut decoded, &mut out)));
    }
    g.finish();
}

criterion_group!(benches, parse, response_head, path);
criterion_main!(benches);
