"""Pydantic models only: the on-disk contracts, requests, reports, prices. No I/O beyond parsing."""
