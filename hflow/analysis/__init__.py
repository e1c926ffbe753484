"""Aggregation of run metrics, bootstrap statistics, figures and tables."""
