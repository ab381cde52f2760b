"""utf8scan's build: a C extension linked with the Rust crate in rust/."""

import importlib.util
from pathlib import Path

from setuptools import setup

try:
    from pyalloc.setuptools import RustStaticExtension, build_ext
except ImportError:
    # pyalloc is not installed here: use a pyalloc checkout next to this
    # project (or this project's own, for the copy inside pyalloc's examples/).
    here = Path(__file__).resolve().parent
    for checkout in (here.parent / "pyalloc", here.parent.parent):
        module_path = checkout / "python" / "pyalloc" / "setuptools.py"
        if module_path.is_file():
            spec = importlib.util.spec_from_file_location("pyalloc_setuptools", module_path)
            pyalloc_setuptools = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(pyalloc_setuptools)
            RustStaticExtension, build_ext = pyalloc_setuptools.RustStaticExtension, pyalloc_setuptools.build_ext
            break
    else:
        raise SystemExit("utf8scan needs pyalloc: `pip install pyalloc`, or put a pyalloc checkout next to this project")

setup(
    ext_modules=[
        RustStaticExtension(
            "utf8scan._utf8scan",
            sources=["src/utf8scan/_utf8scan.c"],
            cargo_manifest="rust/Cargo.toml",
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Werror"],
        )
    ],
    cmdclass={"build_ext": build_ext},
)
