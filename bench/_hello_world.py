"""The capacity yardstick: a hello-world FastAPI app (one pydantic model) on uvicorn, served the
way the gateway is served (one process, uvloop, httptools, no access log).

    python bench/_hello_world.py --port 8200
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Greeting(BaseModel):
    name: str


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/hello")
    async def hello(greeting: Greeting) -> dict[str, str]:
        return {"message": f"hello {greeting.name}"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
