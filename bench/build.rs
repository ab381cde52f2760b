//! The benchmark embeds the interpreter pyo3-ffi links against: point the
//! executable at its libpython (pyalloc's build script reports where it is),
//! and compile the C model (`csrc/c_model.c`, case 1's `c-model` column)
//! against that interpreter's headers.

use std::collections::HashMap;
use std::env;
use std::process::Command;

fn main() {
    if let Ok(dir) = env::var("DEP_PYALLOC_PYTHON_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    let python = pyo3_config();
    let executable = python
        .get("executable")
        .filter(|path| !path.is_empty())
        .expect("pyo3-ffi's config names the interpreter");
    let output = Command::new(executable)
        .args(["-c", "import sysconfig; print(sysconfig.get_path('include'))"])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {executable}: {error}"));
    assert!(
        output.status.success(),
        "{executable} could not name its include directory"
    );
    let include = String::from_utf8(output.stdout).expect("a UTF-8 path");
    cc::Build::new()
        .file("csrc/c_model.c")
        .include(include.trim())
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .flag("-Wno-unused-parameter")
        .compile("pyalloc_bench_c_model");
    println!("cargo:rerun-if-changed=csrc/c_model.c");
    println!("cargo:rerun-if-changed=build.rs");
}

/// pyo3-ffi (`links = "python"`) hands its interpreter config to its direct
/// dependents as hex-encoded `key=value` lines in DEP_PYTHON_PYO3_CONFIG (as
/// pyalloc's own build script reads it).
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
