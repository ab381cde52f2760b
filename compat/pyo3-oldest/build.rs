//! The tests embed the interpreter pyo3 links against: point them at its
//! libpython (pyalloc's build script reports where it is).
fn main() {
    if let Ok(dir) = std::env::var("DEP_PYALLOC_PYTHON_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
