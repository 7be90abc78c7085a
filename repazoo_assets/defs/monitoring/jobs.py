"""The `monitoring` job: the monitoring checks alone (no materialization), so a failing
dependency shows as failed checks with their severity, not as a failed run every five minutes."""

import dagster as dg

from repazoo_assets.defs.monitoring.checks import monitoring_checks

monitoring_job = dg.define_asset_job(
    "monitoring",
    selection=dg.AssetSelection.checks(monitoring_checks),
    description="Evaluates the monitoring thresholds and health probes; failing checks alert.",
)
