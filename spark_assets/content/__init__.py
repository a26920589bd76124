"""The content core: plain Python with no dagster import, unit-tested and benchmarked on its own."""
