"""Pydantic messages and configuration of Driftline. No I/O happens here."""
