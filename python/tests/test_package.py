"""The pyalloc package: its counters and queue, the C API it installs for
extension authors, how its extension is built and linked, the report, and
how it meets subinterpreters and a missing or failing cargo."""

import ctypes
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO
from pyalloc_checks import needed_libraries, run_snippet

import pyalloc
from pyalloc import _pyalloc


def test_stats_collect_and_version():
    stats = pyalloc.stats()
    assert all(isinstance(value, int) and value >= 0 for value in stats.values())
    assert isinstance(pyalloc.collect(), int)
    assert pyalloc.version() == pyalloc.__version__
    cargo_toml = REPO / "Cargo.toml"
    if cargo_toml.exists():
        assert f'version = "{pyalloc.version()}"' in cargo_toml.read_text()


def test_stats_has_every_field_of_the_c_struct():
    # pyalloc_python.h lists the fields by hand: it must keep up with pyalloc.h.
    header = (Path(pyalloc.get_include()) / "pyalloc.h").read_text()
    struct = header[header.index("typedef struct pyalloc_stats {") : header.index("} pyalloc_stats;")]
    fields = re.findall(r"uint64_t (\w+);", struct)
    assert fields and list(pyalloc.stats()) == fields


def test_get_include_and_get_library():
    include = Path(pyalloc.get_include())
    assert "pyalloc_malloc" in (include / "pyalloc.h").read_text()
    assert "PYALLOC_STATS_METHODDEF" in (include / "pyalloc_python.h").read_text()
    library = Path(pyalloc.get_library())
    assert library.read_bytes()[:8] == b"!<arch>\n"


def test_rust_symbols_are_hidden_from_the_module():
    module = ctypes.CDLL(_pyalloc.__file__)
    assert hasattr(module, "PyInit__pyalloc")
    for hidden in ("pyalloc_malloc", "pyalloc_demo_hex", "rust_begin_unwind", "mi_malloc", "pyalloc_module_state"):
        assert not hasattr(module, hidden), hidden


def test_extension_does_not_link_libpython():
    # A module takes Python from the interpreter that loads it.
    needed = needed_libraries(_pyalloc.__file__)
    assert needed and not [library for library in needed if library.startswith("libpython")], needed


def test_typed_package():
    package = Path(pyalloc.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_pyalloc.pyi").exists()


def test_report_passes_and_speaks_json():
    result = subprocess.run([sys.executable, "-m", "pyalloc", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [check["ok"] for check in report["checks"]] == [True] * 5
    assert {row["gil"] for row in report["timing_ns_per_pair"]} == {"held", "released"}
    text = subprocess.run([sys.executable, "-m", "pyalloc"], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "all checks passed" in text.stdout


@pytest.mark.parametrize("pythonmalloc", [None, "debug"])
def test_report_names_the_allocator(pythonmalloc):
    # CPython's own name for it (3.13 moved the function that gives it from
    # _testcapi to _testinternalcapi), not PYTHONMALLOC echoed back.
    default = "pymalloc" if sysconfig.get_config_var("WITH_PYMALLOC") else "malloc"
    expected = {None: default, "debug": default + "_debug"}[pythonmalloc]
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONMALLOC", "PYTHONDEVMODE")}
    if pythonmalloc is not None:
        env["PYTHONMALLOC"] = pythonmalloc
    command = [sys.executable, "-m", "pyalloc"]
    report = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert json.loads(report.stdout)["allocator"] == expected
    if pythonmalloc is None:
        text = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert f"PyMem allocator: {expected}\n" in text.stdout


def test_report_help_says_what_it_does():
    result = subprocess.run([sys.executable, "-m", "pyalloc", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "whether Rust and C share it through pyalloc here. Exits 0 only when every check passes." in " ".join(
        result.stdout.split()
    )


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Py_mod_multiple_interpreters is 3.12+")
def test_module_declines_subinterpreters_with_their_own_gil():
    # hex() needs the main interpreter's PyMem heap, so the module says it
    # does not support other interpreters, and CPython refuses the import.
    code = (
        "try:\n"
        "    import _interpreters as interpreters\n"
        "except ImportError:\n"
        "    import _xxsubinterpreters as interpreters\n"
        "interp = interpreters.create()\n"
        "try:\n"
        "    result = interpreters.run_string(interp, 'import pyalloc._pyalloc')\n"
        "except Exception as error:\n"
        "    result = error\n"
        "print(repr(result))\n"
        "print(interpreters.run_string(interp, 'import math'))\n"
    )
    refused, control = run_snippet(code).strip().splitlines()
    assert "ImportError" in refused and "subinterpreters" in refused, refused
    assert control == "None", "a module without the declaration imports fine"


@pytest.mark.skipif(not (REPO / "setup.py").exists(), reason="needs the source tree")
@pytest.mark.parametrize(
    "env_changes, message",
    [
        ({"CARGO": None, "PATH": "/usr/bin:/bin"}, "cargo was not found: install Rust"),
        ({"CARGO": "/nonexistent/cargo"}, "could not run cargo"),
        ({"CARGO": "false"}, "cargo failed to build the static library of pyalloc: fix the errors"),
    ],
)
def test_setup_py_explains_a_missing_or_failing_cargo(tmp_path, env_changes, message):
    env = dict(os.environ)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-temp", str(tmp_path), "--build-lib", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
