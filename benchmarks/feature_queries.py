"""Downstream queries over the features Parquet with DuckDB: "the top 20 tokens of feature F at
layer L", the question a feature dashboard asks first.

Run from the repository root after `make run` (it reads the default run's features):

    .venv/bin/python benchmarks/feature_queries.py [--set synthetic-plt-npz] [--layer 9] [--repeats 5]

The feature is the one active on the most tokens at that layer. Two SQL forms over the hive-
partitioned dataset (``results/features/<run>/<set>/shard=<S>/layer=<L>/features.parquet``), each
in a fresh DuckDB connection (cold: nothing cached but the OS's page cache) and again in the same
connection (warm), best of ``--repeats``:

1. ``list_position``: the row's own lists, no unnest (``feature_values[list_position(...)]``);
2. ``unnest``: one row per (token, active feature), then filtered.

Both must return the same 20 rows; the script prints the times and the tokens.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]

QUERIES = {
    "list_position": """
        SELECT prompt_id, position, token_id,
               feature_values[list_position(feature_ids, $feature)] AS activation
        FROM read_parquet($files, hive_partitioning = true)
        WHERE layer = $layer AND list_contains(feature_ids, $feature)
        ORDER BY activation DESC, prompt_id, position LIMIT 20""",
    "unnest": """
        SELECT prompt_id, position, token_id, activation FROM (
            SELECT prompt_id, position, token_id,
                   unnest(feature_ids) AS feature, unnest(feature_values) AS activation
            FROM read_parquet($files, hive_partitioning = true) WHERE layer = $layer)
        WHERE feature = $feature
        ORDER BY activation DESC, prompt_id, position LIMIT 20""",
}


def most_active_feature(files: str, layer: int) -> tuple[int, int, int]:
    """(feature, tokens it is active on, tokens at the layer)."""
    feature, count = duckdb.execute(
        """SELECT feature, count(*) AS n FROM (
               SELECT unnest(feature_ids) AS feature
               FROM read_parquet($files, hive_partitioning = true) WHERE layer = $layer)
           GROUP BY feature ORDER BY n DESC, feature LIMIT 1""",
        {"files": files, "layer": layer},
    ).fetchone()
    tokens = duckdb.execute(
        "SELECT count(*) FROM read_parquet($files, hive_partitioning = true) WHERE layer = $layer",
        {"files": files, "layer": layer},
    ).fetchone()[0]
    return feature, count, tokens


def best_of(repeats: int, run) -> tuple[float, list]:
    best, rows = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = run()
        best = min(best, time.perf_counter() - start)
    return best, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", default="default")
    parser.add_argument("--set", default="synthetic-plt-npz")
    parser.add_argument("--layer", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = ROOT / "results" / "features" / args.run / args.set
    files = str(folder / "**" / "features.parquet")
    n_files = len(list(folder.glob("shard=*/layer=*/features.parquet")))
    if not n_files:
        raise SystemExit(f"{folder}: no features; run `make run` first")
    feature, active, tokens = most_active_feature(files, args.layer)
    print(f"{args.set} layer {args.layer}: {n_files} files, {tokens} tokens")
    print(f"feature {feature} is active on {active} of them")
    params = {"files": files, "layer": args.layer, "feature": feature}
    results = {}
    for name, sql in QUERIES.items():
        cold, rows = best_of(args.repeats, lambda sql=sql: duckdb.connect().execute(sql, params).fetchall())
        connection = duckdb.connect()
        warm, _ = best_of(args.repeats, lambda sql=sql, c=connection: c.execute(sql, params).fetchall())
        results[name] = rows
        print(f"{name:>14}: cold {cold * 1e3:7.1f} ms, warm {warm * 1e3:7.1f} ms")
    if results["list_position"] != results["unnest"]:
        raise SystemExit("the two queries disagree")
    print("top 20 (prompt_id, position, token_id, activation):")
    for row in results["list_position"]:
        print(f"  {row[0]:>6} {row[1]:>5} {row[2]:>7} {row[3]:10.4f}")


if __name__ == "__main__":
    main()
