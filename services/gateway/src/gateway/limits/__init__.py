"""Per-key and process-wide limits of the /v1 API (gateway.intake applies them)."""
