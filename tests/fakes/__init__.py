"""Fakes of the parts of the platform that are not ours to run in tests (the LLM server, the web)."""
