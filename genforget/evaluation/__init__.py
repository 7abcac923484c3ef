"""Evaluation: the suites (YAML, package data in ``suites/``) that the harness runs."""
