"""Rows to tables: one job's precision, the sweep's block-design statistics, the summary and effects (no torch)."""
