"""genai scraper service."""
