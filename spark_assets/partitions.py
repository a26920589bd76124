"""The two partition registries every site- or campaign-scoped asset, sensor and schedule imports.

* `site`: one key per registered site, its domain, e.g. `demo-roofing.example`.
* `campaign`: one key per imported campaign, `<domain>/<campaign-slug>`, e.g. `demo-roofing.example/roof-repair`.

Both are dynamic: `new_sites_sensor` and `new_campaigns_sensor` add keys as operators register sites and campaigns.
"""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

site_partitions = DynamicPartitionsDefinition(name="site")
campaign_partitions = DynamicPartitionsDefinition(name="campaign")
