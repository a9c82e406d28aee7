"""Parity checks: see codi.parity.checks."""

CHECKS: dict = {}
