"""From trial results to tables: aggregation, paired sections, per-image errors, plots, queryable files."""
