"""Command groups of `repazoo` beyond the core ones in `repazoo_assets.cli`, one module per group,
and what every group shares: operator-fixable errors end in one line and exit status 2."""

from __future__ import annotations

import click

EXIT_CONFIG = 2


class ReportedError(click.ClickException):
    exit_code = EXIT_CONFIG

    def show(self, file=None) -> None:
        click.echo(f"repazoo: error: {self.message}", err=True)


class OperatorGroup(click.Group):
    """Turns known, operator-fixable errors into one clear line."""

    def invoke(self, ctx: click.Context):
        from repazoo_assets.lib.settings import SettingsError
        from repazoo_assets.lib.storage import ObjectStoreError

        try:
            return super().invoke(ctx)
        except (SettingsError, ObjectStoreError) as exc:
            raise ReportedError(str(exc)) from None
