"""Helpers for bench/run.py: processes, wrk runs, the targets under test and the report."""
