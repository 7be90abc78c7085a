"""Command groups of `repazoo` beyond the core ones in `repazoo_assets.cli`, one module per group."""
