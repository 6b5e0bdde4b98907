"""The services' published request schemas, one module per service: what may be sent, validated before sending."""
