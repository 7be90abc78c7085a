"""Build of the PII detector's compiled engine (everything else is in pyproject.toml).

`pip install -e '.[dev]'` (what `make install` runs) compiles it with the machine's C compiler.
Without a compiler the install still succeeds: the extension is optional, and
repazoo_assets.lib.privacy.pii then runs its pure-Python engine (and logs a warning saying so).
See docs/pii.md.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "repazoo_assets.lib.privacy._pii_fast",
            sources=["repazoo_assets/lib/privacy/_pii_fast.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wno-unused-function"],
            optional=True,
        )
    ],
)
