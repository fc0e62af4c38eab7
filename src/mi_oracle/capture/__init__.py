"""Activation capture: prompts -> tokens -> hooked forward passes -> hive-partitioned Parquet."""
