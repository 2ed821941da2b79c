"""The stages of one experiment as plain functions: crops, fit, predict, merge, evaluate.

The Dagster layer calls these; they know nothing of Dagster and can be run from a notebook.
"""
