"""genai imagegen service."""
