"""Build of the compiled parts (everything else is in pyproject.toml): the PII detector's engine
and the event export's payload check.

`pip install -e '.[dev]'` (what `make install` runs) compiles it with the machine's C compiler.
Without a compiler the install still succeeds: both extensions are optional, and
repazoo_assets.lib.privacy.pii then runs its pure-Python engine (and logs a warning saying so;
see docs/pii.md), repazoo_assets.lib.events.export its orjson check (docs/events.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "repazoo_assets.lib.privacy._pii_fast",
            sources=["repazoo_assets/lib/privacy/_pii_fast.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wno-unused-function"],
            optional=True,
        ),
        Extension(
            "repazoo_assets.lib.events._json_check",
            sources=["repazoo_assets/lib/events/_json_check.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall"],
            optional=True,
        ),
    ],
)
