"""Adapters that load the project's dictionaries into peer libraries (installed by the ``peers`` extra)."""
