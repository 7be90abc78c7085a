"""Entry point of the code location: the modules under `repazoo_assets/defs/<domain>/`, listed.

The modules are named here rather than found by `dg.load_from_defs_folder`: that loader also
imports every installed component plugin (dagster-aws, dagster-k8s, ...) and builds their JSON
schemas for the UI's component catalogue, which cost more than a second of every process that
loads the code location (the code server, each run worker and each step process). Each module
is loaded the way the defs-folder loader loads a plain Python file: its `@dg.definitions`
function if it has one, otherwise every Dagster object at module scope. A test checks that every
module in the folder is listed, so a new file cannot be left out silently.
"""

import importlib
import warnings
from types import ModuleType

import dagster as dg
from dagster.components.definitions import LazyDefinitions

from repazoo_assets.lib.privacy import log_filter

# Before anything can log: every record this code location makes, in any run, is redacted.
log_filter.install()

DEFS_MODULES = (
    "repazoo_assets.defs.resources",
    "repazoo_assets.defs.execution.jobs",
    "repazoo_assets.defs.twitter.assets",
    "repazoo_assets.defs.twitter.sensors",
    "repazoo_assets.defs.requests.sensors",
    "repazoo_assets.defs.events.partitions",
    "repazoo_assets.defs.events.assets",
    "repazoo_assets.defs.compliance.erasure",
    "repazoo_assets.defs.compliance.exports",
    "repazoo_assets.defs.compliance.report",
    "repazoo_assets.defs.compliance.retention",
    "repazoo_assets.defs.monitoring.assets",
    "repazoo_assets.defs.monitoring.checks",
    "repazoo_assets.defs.monitoring.jobs",
    "repazoo_assets.defs.monitoring.schedules",
    "repazoo_assets.defs.monitoring.sensors",
)


def _lazy_definitions(module: ModuleType) -> list[LazyDefinitions]:
    return [value for value in vars(module).values() if isinstance(value, LazyDefinitions)]


def build_defs() -> dg.Definitions:
    """Load the defs modules now; resources follow the environment as it is at this call."""
    modules = [importlib.import_module(name) for name in DEFS_MODULES]
    # As the defs-folder loader does per file: a module's `@dg.definitions` functions if it has
    # any, otherwise the Dagster objects at its module scope.
    lazy = [load() for module in modules for load in _lazy_definitions(module)]
    plain = [module for module in modules if not _lazy_definitions(module)]
    with warnings.catch_warnings():
        # Marked preview; it is the loader the defs-folder loader itself runs on each plain file.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        scoped = dg.load_definitions_from_modules(plain)
    return dg.Definitions.merge(scoped, *lazy)


defs = build_defs()
