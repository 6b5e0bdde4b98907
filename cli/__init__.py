"""The `reelflow` command and the local Prefect server it starts: the only code that prints."""
