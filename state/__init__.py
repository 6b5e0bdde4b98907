"""What a project remembers: the state database (ledger, cache index, rejections, budgets), blobs, provider limits,
dailies and manifest files. Shared safely by every process that renders the project."""
