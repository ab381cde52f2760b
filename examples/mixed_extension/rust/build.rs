//! Generates `utf8scan.h` (this crate's C API) into OUT_DIR, which
//! pyalloc.setuptools puts on the extension's include path.
fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // Parses the source file alone (`with_crate` would run `cargo metadata`,
    // which does not see the pyalloc patch that pyalloc.setuptools passes).
    cbindgen::Builder::new()
        .with_src(std::path::Path::new(&crate_dir).join("src/lib.rs"))
        .with_language(cbindgen::Language::C)
        .with_include_guard("UTF8SCAN_H")
        .with_sys_include("stddef.h")
        .with_sys_include("stdint.h")
        .with_no_includes()
        .generate()
        .expect("cbindgen could not generate utf8scan.h")
        .write_to_file(out_dir.join("utf8scan.h"));
    println!("cargo:rerun-if-changed=src");
}
