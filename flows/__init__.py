"""Prefect flows only: render an episode, estimate it (a dry run), previz, review."""
