"""Entry point of the code location: everything under `repazoo_assets/defs/<domain>/`."""

from pathlib import Path

import dagster as dg

from repazoo_assets.lib.privacy import log_filter

# Before anything can log: every record this code location makes, in any run, is redacted.
log_filter.install()


def build_defs() -> dg.Definitions:
    """Load the defs folder now; resources follow the environment as it is at this call."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


defs = build_defs()
