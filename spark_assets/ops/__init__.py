"""The operator's entry points: the `spark` CLI, `spark demo`, the provider sandbox and the local Dagster instance.

The top layer: it may import anything in the package, and nothing in the package imports it.
"""
