"""Entry point of the code location: everything under `repazoo_assets/defs/<domain>/`."""

from pathlib import Path

import dagster as dg


def build_defs() -> dg.Definitions:
    """Load the defs folder now; resources follow the environment as it is at this call."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


defs = build_defs()
