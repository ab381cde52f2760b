"""utf8scan's build: a C extension linked with the Rust crate in rust/."""

from setuptools import setup

from pyalloc.setuptools import RustStaticExtension, build_ext

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
