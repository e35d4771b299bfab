"""genai ingest service."""
