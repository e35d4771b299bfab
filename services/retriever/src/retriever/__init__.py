"""genai retriever service."""
