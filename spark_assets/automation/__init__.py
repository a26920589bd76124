"""What starts runs without an operator: sensors (and, later, schedules). May import the assets and everything below
them, never `spark_assets.ops`."""
