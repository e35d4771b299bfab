"""Gateway feature: documents (upload → `document.uploaded` → ingest → retriever; list, status,
delete, search).

`routes` is the HTTP edge, `library` the use cases, `domain` the values, `store` and `tables` the
SQL, `publisher` the AMQP edge out; `receive`, `sniff` and `naming` take an upload apart.
Wired in `gateway.wiring`.
"""
