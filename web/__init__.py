"""The review pages (the dailies page) and their 127.0.0.1 server: an entry point, like the CLI."""
