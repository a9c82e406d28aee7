"""Parity against numbers produced by the official implementation (`python -m codi.parity`)."""
