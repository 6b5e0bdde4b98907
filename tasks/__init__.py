"""Stage tasks, one module per stage, each a retryable, cached Prefect task; job.py, calls.py and retry.py are
what every stage shares: what it reads, how it calls a provider, how it retries."""
