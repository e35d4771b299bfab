"""genai gateway service."""
