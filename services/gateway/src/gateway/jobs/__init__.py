"""Gateway feature: long-running jobs (image generation by imagegen workers, batch text by the LLM).

`routes` is the HTTP edge, `board` the use cases (submit, look up, cancel, apply progress),
`domain` the values, `store` and `tables` the SQL, `publisher` the AMQP edge out, `consumer` and
`text_worker` batch text, `event_stream` the server-sent progress. Without an LLM, text
submissions are refused with 503 at once (nothing is queued that could never run).
Wired in `gateway.wiring`.
"""
