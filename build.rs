//! Build script: on Linux, links the `spindle` binary with `link/hot-text.ld`,
//! which places the functions a serving spindle runs together at the start of
//! its code (see `link/hot-text.py` for why and how it is made). The library
//! is not affected. Set `SPINDLE_HOT_TEXT=0` to link without it (for a linker
//! without `INSERT` support in scripts, such as gold or mold).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=link/hot-text.ld");
    println!("cargo::rerun-if-env-changed=SPINDLE_HOT_TEXT");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let wanted = env::var("SPINDLE_HOT_TEXT").map_or(true, |v| v != "0");
    let script =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("link/hot-text.ld");
    if linux && wanted && script.exists() {
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
