//! The checked-in `include/pyalloc.h` is what cbindgen makes of the sources
//! now (build.rs writes a fresh copy to OUT_DIR), and its version macros are
//! Cargo.toml's.

use std::fs;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/include/pyalloc.h");

#[test]
fn checked_in_header_matches_cbindgen() {
    let generated = fs::read_to_string(concat!(env!("OUT_DIR"), "/pyalloc.h")).expect("build.rs wrote it");
    let checked_in = fs::read_to_string(CHECKED_IN).expect("include/pyalloc.h exists");
    assert!(
        generated == checked_in,
        "include/pyalloc.h differs from what cbindgen generates: run `PYALLOC_UPDATE_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let header = fs::read_to_string(CHECKED_IN).expect("include/pyalloc.h exists");
    let define = |name: &str| {
        header
            .lines()
            .find_map(|line| line.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} is defined"))
            .trim_matches('"')
            .to_owned()
    };
    assert_eq!(define("PYALLOC_VERSION"), env!("CARGO_PKG_VERSION"));
    assert_eq!(define("PYALLOC_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MAJOR"));
    assert_eq!(define("PYALLOC_VERSION_MINOR"), env!("CARGO_PKG_VERSION_MINOR"));
    assert_eq!(define("PYALLOC_VERSION_PATCH"), env!("CARGO_PKG_VERSION_PATCH"));
}
