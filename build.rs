//! Build script: reads the Python that pyo3-ffi builds for, turns its version
//! into cfgs, points the test binaries at its libpython, and generates the C
//! header with cbindgen.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Minor versions of CPython 3 whose differences the code cares about; each
/// becomes `pyalloc_py3NN` when the target interpreter is that version or newer.
const GATED_MINORS: [u32; 4] = [10, 11, 12, 13];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));

    let python = pyo3_config();
    emit_version_cfgs(&python);
    emit_test_link_args(&python);
    generate_header(&manifest_dir, &out_dir);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=PYALLOC_UPDATE_HEADER");
    // `links = "pyalloc"`: dependents' build scripts find the header as DEP_PYALLOC_INCLUDE.
    println!("cargo:include={}", manifest_dir.join("include").display());
}

/// pyo3-ffi (`links = "python"`) hands its interpreter config to dependents as
/// hex-encoded `key=value` lines in DEP_PYTHON_PYO3_CONFIG; the same format
/// from pyo3-ffi 0.23 to 0.30.
fn pyo3_config() -> HashMap<String, String> {
    let hex = env::var("DEP_PYTHON_PYO3_CONFIG")
        .expect("pyo3-ffi did not pass its interpreter config (DEP_PYTHON_PYO3_CONFIG)");
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            u8::from_str_radix(std::str::from_utf8(pair).expect("ascii hex"), 16)
                .expect("DEP_PYTHON_PYO3_CONFIG is hex")
        })
        .collect();
    String::from_utf8(bytes)
        .expect("pyo3 config is UTF-8")
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn emit_version_cfgs(python: &HashMap<String, String>) {
    for minor in GATED_MINORS {
        println!("cargo:rustc-check-cfg=cfg(pyalloc_py3{minor})");
    }
    println!("cargo:rustc-check-cfg=cfg(pyalloc_free_threaded)");

    let version = python.get("version").expect("pyo3 config names a version");
    let (major, minor) = version.split_once('.').expect("version is MAJOR.MINOR");
    assert_eq!(major, "3", "pyalloc supports CPython 3 only, not {version}");
    let minor: u32 = minor.parse().expect("numeric minor version");
    assert!(
        minor >= 9,
        "pyalloc supports CPython 3.9 and newer, not {version}"
    );
    for gated in GATED_MINORS {
        if minor >= gated {
            println!("cargo:rustc-cfg=pyalloc_py3{gated}");
        }
    }
    let flags = python.get("build_flags").map(String::as_str).unwrap_or("");
    if flags.split(',').any(|flag| flag == "Py_GIL_DISABLED") {
        println!("cargo:rustc-cfg=pyalloc_free_threaded");
    }
    if let Some(implementation) = python.get("implementation") {
        assert_eq!(
            implementation, "CPython",
            "pyalloc relies on CPython's allocator and thread states"
        );
    }
}

/// The crate's own tests embed the interpreter: they need libpython at run
/// time (rpath) and the interpreter's path to find its headers and home.
fn emit_test_link_args(python: &HashMap<String, String>) {
    if let Some(lib_dir) = python.get("lib_dir").filter(|dir| !dir.is_empty()) {
        // Applies to this package's tests, benches and examples only: a
        // staticlib or rlib is not linked here, so users are not affected.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        // Dependents that embed the interpreter (the benchmark) read it as
        // DEP_PYALLOC_PYTHON_LIB_DIR for their own rpath.
        println!("cargo:python_lib_dir={lib_dir}");
    }
    let executable = python.get("executable").cloned().unwrap_or_default();
    println!("cargo:rustc-env=PYALLOC_BUILD_PYTHON={executable}");
    println!(
        "cargo:rustc-env=PYALLOC_BUILD_TARGET={}",
        env::var("TARGET").expect("set by cargo")
    );
}

/// Generates `pyalloc.h` into OUT_DIR, where the header test compares it with
/// the checked-in `include/pyalloc.h`; `PYALLOC_UPDATE_HEADER=1` rewrites the
/// checked-in copy (a build script must not touch the source tree otherwise).
fn generate_header(manifest_dir: &Path, out_dir: &Path) {
    let mut config =
        cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("set by cargo");
    config.after_includes = Some(format!(
        "\n#define PYALLOC_VERSION \"{}\"\n#define PYALLOC_VERSION_MAJOR {}\n#define PYALLOC_VERSION_MINOR {}\n#define PYALLOC_VERSION_PATCH {}",
        env::var("CARGO_PKG_VERSION").expect("set by cargo"),
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
    ));
    let generated = out_dir.join("pyalloc.h");
    cbindgen::Builder::new()
        .with_crate(manifest_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate pyalloc.h")
        .write_to_file(&generated);

    if env::var_os("PYALLOC_UPDATE_HEADER").is_some_and(|v| v == "1") {
        let checked_in = manifest_dir.join("include").join("pyalloc.h");
        let text = fs::read(&generated).expect("generated header is readable");
        if fs::read(&checked_in).ok().as_deref() != Some(text.as_slice()) {
            fs::write(&checked_in, text).expect("include/pyalloc.h is writable");
        }
    }
}
