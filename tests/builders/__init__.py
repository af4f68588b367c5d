"""Builders of small test models and inputs (plain functions, imported by the tests that need them)."""
