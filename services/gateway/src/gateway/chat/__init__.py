"""Gateway feature: chat (OpenAI-compatible chat completions grounded in scraped pages and documents).

`routes` is the HTTP edge; `answering` runs one chat (sources, prompt, LLM or retrieval-only);
`context` gathers the sources; `prompt`, `sources`, `completion` and `excerpts` build what the
model and the client read. Wired in `gateway.wiring`.
"""
