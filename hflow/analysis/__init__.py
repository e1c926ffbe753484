"""Aggregation of run metrics, rliable statistics, figures and tables."""
