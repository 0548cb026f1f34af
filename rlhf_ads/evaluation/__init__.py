"""Evaluation: metrics with known answers, and (later) the report."""
