//! The binary's layout: the request path lies in the hot text that
//! `link/hot-text.ld` (passed by `build.rs`) gathers. A failure here means the
//! script no longer names these functions (renamed, moved): regenerate it with
//! `python3 link/hot-text.py`.
#![cfg(target_os = "linux")]

use std::process::Command;

/// The output of `tool args… binary`; binutils comes with the C toolchain that links Rust.
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(env!("CARGO_BIN_EXE_spindle"))
        .output()
        .unwrap_or_else(|e| panic!("running {tool} (binutils): {e}"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The address range of section `name`.
fn section(name: &str) -> Option<(u64, u64)> {
    // "  [16] .text.hot  PROGBITS  0000000000030e70 02fe70 05a4ad 00  AX  0   0 16"
    run("readelf", &["-SW"]).lines().find_map(|line| {
        let fields: Vec<&str> = line.split(']').nth(1)?.split_whitespace().collect();
        if fields.first() != Some(&name) {
            return None;
        }
        let addr = u64::from_str_radix(fields.get(2)?, 16).ok()?;
        let size = u64::from_str_radix(fields.get(4)?, 16).ok()?;
        Some((addr, addr + size))
    })
}

/// `name` without the hash that legacy mangling appends (`::h0123456789abcdef`).
fn without_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((base, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => base,
        _ => name,
    }
}

#[test]
fn request_path_is_in_the_hot_text() {
    if std::env::var("SPINDLE_HOT_TEXT").is_ok_and(|v| v == "0") {
        return; // built without it on purpose
    }
    let (start, end) = section(".text.hot").expect("the binary has a .text.hot section");
    assert!(end - start >= 64 * 1024, "the hot text is only {} bytes", end - start);
    let symbols = run("nm", &["-C", "--defined-only"]);
    let functions = [
        "spindle::main",
        "spindle::server::Server::accept_from",
        "spindle::conn::Conn::drive",
        "spindle::conn::Conn::write_response",
        "spindle::router::Router::dispatch",
        "<spindle::files::StaticFiles as spindle::router::Handler>::handle",
    ];
    for function in functions {
        let addresses: Vec<u64> = symbols
            .lines()
            .filter_map(|line| {
                let (addr, rest) = line.split_once(' ')?;
                if without_hash(rest.get(2..)?) != function {
                    return None; // (after the type letter and its space)
                }
                u64::from_str_radix(addr, 16).ok()
            })
            .collect();
        assert!(!addresses.is_empty(), "{function} is not in the binary (inlined or renamed?)");
        for addr in addresses {
            assert!(
                (start..end).contains(&addr),
                "{function} at {addr:#x} is outside the hot text {start:#x}..{end:#x}"
            );
        }
    }
}
