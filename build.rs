//! Build script: reads the Python that pyo3-ffi builds for and turns its
//! version into the cfgs that select pyalloc's CPython-version shims
//! (`src/cpython/`), and points this package's own test binaries at its
//! libpython. The C header is not generated here: it is checked in, and
//! `tests/header.rs` fails when it drifts from the sources.

use std::collections::HashMap;
use std::env;
use std::path::PathBuf;

/// The oldest CPython 3 minor version pyalloc supports (3.9 and 3.10 are past
/// their end of life, and share 3.11's thread-state blind spots).
const OLDEST_MINOR: u32 = 11;
/// Minor versions whose differences the shims care about; each becomes
/// `pyalloc_py3NN` when the target interpreter is that version or newer.
/// 3.16 is the first the shims do not know (`pyalloc_py316`): there they
/// read no CPython layout themselves. From 3.15 (`pyalloc_py315`) private
/// blocks may be shown to tracemalloc (`src/private/tracemalloc.rs`).
const GATED_MINORS: [u32; 5] = [12, 13, 14, 15, 16];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let python = pyo3_config();
    emit_version_cfgs(&python);
    emit_test_link_args(&python);

    println!("cargo:rerun-if-changed=build.rs");
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

    if let Some(implementation) = python.get("implementation") {
        assert_eq!(
            implementation, "CPython",
            "pyalloc relies on CPython's allocator and thread states"
        );
    }
    let version = python.get("version").expect("pyo3 config names a version");
    let (major, minor) = version.split_once('.').expect("version is MAJOR.MINOR");
    assert_eq!(major, "3", "pyalloc supports CPython 3 only, not {version}");
    let minor: u32 = minor.parse().expect("numeric minor version");
    assert!(
        minor >= OLDEST_MINOR,
        "pyalloc supports CPython 3.{OLDEST_MINOR} and newer, not {version}"
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
}

/// The crate's own tests embed the interpreter: they need libpython at run
/// time (rpath) and the interpreter's path to find its headers and home.
fn emit_test_link_args(python: &HashMap<String, String>) {
    if let Some(lib_dir) = python.get("lib_dir").filter(|dir| !dir.is_empty()) {
        // Applies to this package's tests, benches and examples only: a
        // staticlib or rlib is not linked here, so users are not affected.
        // ELF and Mach-O linkers know rpath; Windows finds DLLs on PATH.
        if env::var_os("CARGO_CFG_UNIX").is_some() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        }
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
