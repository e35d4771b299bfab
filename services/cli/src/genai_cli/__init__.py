"""`genai`: the platform's command line, a thin client of the gateway's public `/v1` API."""
