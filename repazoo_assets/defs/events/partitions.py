"""Partitions of the event pipeline. `clients`: one partition per business client, added by
`repazoo clients add` (the event assets that use it come with the event pipeline)."""

import dagster as dg

clients_partitions = dg.DynamicPartitionsDefinition(name="clients")
