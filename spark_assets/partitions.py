"""The two partition registries every site- or campaign-scoped asset, sensor and schedule imports.

* `site`: one key per registered site, its domain, e.g. `demo-roofing.example`.
* `campaign`: one key per imported campaign, `<domain>/<campaign-slug>`, e.g. `demo-roofing.example/roof-repair`.

Both are dynamic: `new_sites_sensor` and `new_campaigns_sensor` add keys as operators register sites and campaigns.

* `analytics_days`: one key per day (UTC date, `2026-11-29`), for the analytics assets. Every active site is handled
  inside each run, never a partition per site and day (docs/ARCHITECTURE.md, "Analytics"). It starts 16 months before
  this code was written: Search Console keeps 16 months of data, so nothing older can be asked for.
"""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

site_partitions = DynamicPartitionsDefinition(name="site")
campaign_partitions = DynamicPartitionsDefinition(name="campaign")

#: the first day the analytics assets can be asked about
ANALYTICS_START = "2025-08-01"
analytics_days = DailyPartitionsDefinition(start_date=ANALYTICS_START, timezone="UTC", fmt="%Y-%m-%d")
