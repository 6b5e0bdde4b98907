"""What a project remembers: the state database (ledger, cache index, rejections, budgets), blobs (on disk, and in S3
where the project names a blob URL), run reports, provider limits, dailies and manifest files. Shared safely by every
process that renders the project."""
