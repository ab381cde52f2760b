"""pyalloc.setuptools: a user's own crate linked into a user's own C
extension (the examples/mixed_extension project, built in a temporary copy),
rebuilt only when the Rust changed, and one clear sentence for each mistake."""

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO
from pyalloc_checks import needed_libraries

import pyalloc

EXAMPLE = REPO / "examples" / "mixed_extension"


def build_inplace(project, env_changes=None):
    env = dict(os.environ)
    for name, value in (env_changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.fixture(scope="module")
def cargo_target(tmp_path_factory):
    """One cargo target directory for the module's builds: cargo compiles
    pyalloc and the example's dependencies once."""
    return tmp_path_factory.mktemp("cargo-target")


def test_builds_links_and_rebuilds_only_when_rust_changes(tmp_path, cargo_target):
    project = tmp_path / "mixed_extension"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("target", "build", "*.so", "*.egg-info"))
    env = {"CARGO_TARGET_DIR": str(cargo_target), "PYALLOC_BUILD_PROFILE": "debug"}

    first = build_inplace(project, env)
    assert first.returncode == 0, first.stdout + first.stderr
    (module,) = (project / "src" / "utf8scan").glob("_utf8scan*.so")
    archive = cargo_target / "debug" / "libutf8scan.a"  # CARGO_TARGET_DIR and the debug profile honoured
    assert archive.is_file()
    stamps = (module.stat().st_mtime_ns, archive.stat().st_mtime_ns)

    # Nothing changed: cargo builds nothing, setuptools links nothing.
    again = build_inplace(project, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (module.stat().st_mtime_ns, archive.stat().st_mtime_ns) == stamps

    # The Rust changed: a new archive, and the module relinked with it. (A
    # second later: this file system keeps whole seconds, and setuptools
    # relinks only when an input is strictly newer than the module.)
    time.sleep(1.1)
    lib_rs = project / "rust" / "src" / "lib.rs"
    lib_rs.write_text(lib_rs.read_text() + "\n// changed\n")
    changed = build_inplace(project, env)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert archive.stat().st_mtime_ns != stamps[1]
    assert module.stat().st_mtime_ns != stamps[0]

    # It works, and only the module's init function is exported.
    check = subprocess.run(
        [sys.executable, "-c", "import utf8scan; print(list(memoryview(utf8scan.invalid_offsets(b'a\\xffb'))))"],
        cwd=project / "src",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.stdout.strip() == "[1]", check.stderr
    library = ctypes.CDLL(str(module))
    assert hasattr(library, "PyInit__utf8scan")
    for hidden in ("utf8scan_invalid_offsets", "pyalloc_malloc", "rust_begin_unwind"):
        assert not hasattr(library, hidden), hidden
    assert not [lib for lib in needed_libraries(module) if lib.startswith("libpython")]


def test_a_second_build_ext_run_in_one_process_adds_nothing(tmp_path, cargo_target):
    project = tmp_path / "mixed_extension"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("target", "build", "*.so", "*.egg-info"))
    script = textwrap.dedent(
        """
        from setuptools import Distribution
        from pyalloc.setuptools import RustStaticExtension, build_ext
        extension = RustStaticExtension("utf8scan._utf8scan", sources=["src/utf8scan/_utf8scan.c"],
                                        cargo_manifest="rust/Cargo.toml")
        dist = Distribution({"ext_modules": [extension], "cmdclass": {"build_ext": build_ext},
                             "package_dir": {"": "src"}, "packages": ["utf8scan"]})
        for _ in range(2):
            command = dist.reinitialize_command("build_ext")
            command.inplace = 1
            command.ensure_finalized()
            command.run()
        print(len(extension.extra_objects), extension.extra_link_args.count("-Wl,--exclude-libs,ALL"))
        """
    )
    env = dict(os.environ, CARGO_TARGET_DIR=str(cargo_target), PYALLOC_BUILD_PROFILE="debug")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-2:] == ["1", "1"], "one archive, one set of link flags"


def write_project(root, manifest, crate_toml=None, extra_objects=(), lib_rs="", options=""):
    """A one-extension project whose setup.py uses pyalloc.setuptools."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "t.c").write_text("#include <Python.h>\n")
    if crate_toml is not None:
        (root / "crate" / "src").mkdir(parents=True)
        (root / "crate" / "Cargo.toml").write_text(textwrap.dedent(crate_toml))
        (root / "crate" / "src" / "lib.rs").write_text(lib_rs)
    (root / "setup.py").write_text(
        textwrap.dedent(
            f"""
            from setuptools import setup
            from pyalloc.setuptools import RustStaticExtension, build_ext
            setup(
                name="t",
                ext_modules=[RustStaticExtension("_t", sources=["t.c"], cargo_manifest={manifest!r},
                                                 extra_objects={list(extra_objects)!r}{options})],
                cmdclass={{"build_ext": build_ext}},
            )
            """
        )
    )
    return root


CRATE_HEAD = """
    [package]
    name = "user-crate"
    version = "0.1.0"
    edition = "2021"
    [workspace]
"""


STATICLIB_ON_PYALLOC = CRATE_HEAD + '[lib]\ncrate-type = ["staticlib"]\n[dependencies]\npyalloc = "0.1"\n'


@pytest.mark.parametrize(
    "case, message",
    [
        ("no cargo", "cargo was not found: install Rust"),
        ("no manifest", "does not exist: give the crate's Cargo.toml"),
        ("not a staticlib", 'builds no static library: add crate-type = ["staticlib"]'),
        ("no pyalloc dependency", "does not depend on pyalloc: add pyalloc = \"0.1\" to its [dependencies]"),
        ("two Rust static libraries", "would link two Rust static libraries"),
        ("a list of crates", "link one crate per extension"),
        ("its own global allocator", "declares its own #[global_allocator], and pyalloc's global-allocator feature"),
        ("a Rust error", "cargo failed to build the static library of user-crate: fix the errors it printed above"),
    ],
)
def test_each_mistake_gets_one_clear_sentence(tmp_path, case, message, cargo_target):
    env = {"CARGO_TARGET_DIR": str(cargo_target), "PYALLOC_BUILD_PROFILE": "debug"}
    manifest = "crate/Cargo.toml"
    crate_toml = STATICLIB_ON_PYALLOC
    extra_objects = ()
    lib_rs = ""
    if case == "no cargo":
        env = {"CARGO": None, "PATH": "/usr/bin:/bin"}
    elif case == "no manifest":
        manifest, crate_toml = "missing/Cargo.toml", None
    elif case == "not a staticlib":
        crate_toml = CRATE_HEAD + '[lib]\ncrate-type = ["rlib"]\n'
    elif case == "no pyalloc dependency":
        crate_toml = CRATE_HEAD + '[lib]\ncrate-type = ["staticlib"]\n'
    elif case == "two Rust static libraries":
        extra_objects = (pyalloc.get_library(),)
    elif case == "a list of crates":
        manifest = ["crate/Cargo.toml", "other/Cargo.toml"]
    elif case == "its own global allocator":
        lib_rs = "#[global_allocator]\nstatic GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;\n"
    elif case == "a Rust error":
        lib_rs = "fn broken() -> u8 { \"not a number\" }\n"
    project = write_project(tmp_path / "project", manifest, crate_toml, extra_objects, lib_rs)
    result = build_inplace(project, env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output
    assert "rustup update" not in output


def test_a_crate_directory_is_a_manifest_too(tmp_path, cargo_target):
    project = write_project(tmp_path / "project", "crate", STATICLIB_ON_PYALLOC)
    result = build_inplace(project, {"CARGO_TARGET_DIR": str(cargo_target), "PYALLOC_BUILD_PROFILE": "debug"})
    assert result.returncode == 0, result.stdout + result.stderr


HAND_OFF_RS = """
#[no_mangle]
pub extern "C" fn t_hand_off() -> usize {
    match pyalloc::into_pymem(vec![7u8; 10]) {
        Ok(block) => {
            let (pointer, len) = block.into_raw();
            // SAFETY: a block into_pymem handed over, released once.
            unsafe { pyalloc::pyalloc_free(pointer.cast()) };
            len
        }
        Err(_) => 0,
    }
}
"""

HAND_OFF_C = """
#include <Python.h>
size_t t_hand_off(void);
static PyObject *hand_off(PyObject *m, PyObject *u) { (void)m; (void)u; return PyLong_FromSize_t(t_hand_off()); }
static PyMethodDef methods[] = {{"hand_off", hand_off, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, .m_name = "_t", .m_methods = methods};
PyMODINIT_FUNC PyInit__t(void) { return PyModuleDef_Init(&def); }
"""


def test_without_pyalloc_as_the_global_allocator_build_and_run_say_so(tmp_path, cargo_target):
    # The crate keeps the system allocator: every hand-off is a copy. The
    # build says so, and so does the first hand-off at run time.
    project = write_project(
        tmp_path / "project",
        "crate/Cargo.toml",
        STATICLIB_ON_PYALLOC,
        lib_rs=HAND_OFF_RS,
        options=", pyalloc_global_allocator=False",
    )
    (project / "t.c").write_text(HAND_OFF_C)
    result = build_inplace(project, {"CARGO_TARGET_DIR": str(cargo_target), "PYALLOC_BUILD_PROFILE": "debug"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "links pyalloc's C API without PyAlloc as its global allocator" in result.stderr
    run = subprocess.run(
        [sys.executable, "-c", "import _t; print(_t.hand_off(), _t.hand_off())"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["10", "10"]
    assert run.stderr.count("PyAlloc is not this program's #[global_allocator]") == 1, run.stderr
