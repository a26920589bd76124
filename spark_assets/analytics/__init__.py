"""The analytics core, pure (no dagster, no database): which days are final, the report's numbers and its charts."""
