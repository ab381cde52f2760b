//! `include/pyalloc.h` is what cbindgen makes of the sources now, and its
//! version macros are Cargo.toml's. The header is generated here, not in a
//! build script, so that crates depending on pyalloc never build cbindgen.
//! `PYALLOC_UPDATE_HEADER=1 cargo test --test header` rewrites it.

use std::path::Path;
use std::{env, fs};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// What cbindgen generates from the sources, with the version macros, and
/// with rustdoc's `# Safety` headings turned into plain C comment text.
fn generated_header() -> String {
    let mut config = cbindgen::Config::from_file(Path::new(MANIFEST_DIR).join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    config.after_includes = Some(format!(
        "\n#define PYALLOC_VERSION \"{}\"\n#define PYALLOC_VERSION_MAJOR {}\n#define PYALLOC_VERSION_MINOR {}\n#define PYALLOC_VERSION_PATCH {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ));
    let mut bytes = Vec::new();
    cbindgen::Builder::new()
        .with_crate(MANIFEST_DIR)
        .with_config(config)
        .generate()
        .expect("cbindgen generates pyalloc.h")
        .write(&mut bytes);
    String::from_utf8(bytes)
        .expect("UTF-8")
        .lines()
        .map(|line| match line.trim_start().strip_prefix("// # ") {
            Some(heading) => format!("{}// {heading}:", &line[..line.len() - line.trim_start().len()]),
            None => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

#[test]
fn checked_in_header_matches_cbindgen() {
    let checked_in_path = Path::new(MANIFEST_DIR).join("include").join("pyalloc.h");
    let generated = generated_header();
    if env::var_os("PYALLOC_UPDATE_HEADER").is_some_and(|value| value == "1") {
        fs::write(&checked_in_path, &generated).expect("include/pyalloc.h is writable");
    }
    let checked_in = fs::read_to_string(&checked_in_path).expect("include/pyalloc.h exists");
    assert!(
        generated == checked_in,
        "include/pyalloc.h differs from what cbindgen generates: run \
         `PYALLOC_UPDATE_HEADER=1 cargo test --test header` and commit it"
    );
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let header = fs::read_to_string(Path::new(MANIFEST_DIR).join("include").join("pyalloc.h"))
        .expect("include/pyalloc.h exists");
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
