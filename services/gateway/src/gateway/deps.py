"""FastAPI dependencies of the routes: each hands out one part of the `Resources` that the app's
lifespan opened (`Annotated` aliases, so a route says `documents: Documents`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.chat.answering import ChatAnswerer
from gateway.documents.library import DocumentLibrary
from gateway.jobs.board import JobBoard
from gateway.settings import GatewaySettings
from gateway.wiring import Resources
from genai_common.blobs import BlobStore


async def _resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(_resources)]


async def _chat(resources: ResourcesDep) -> ChatAnswerer:
    return resources.chat


async def _documents(resources: ResourcesDep) -> DocumentLibrary:
    return resources.documents


async def _jobs(resources: ResourcesDep) -> JobBoard:
    return resources.jobs


async def _blobs(resources: ResourcesDep) -> BlobStore:
    return resources.blobs


async def _settings(resources: ResourcesDep) -> GatewaySettings:
    return resources.settings


Chat = Annotated[ChatAnswerer, Depends(_chat)]
Documents = Annotated[DocumentLibrary, Depends(_documents)]
Jobs = Annotated[JobBoard, Depends(_jobs)]
Blobs = Annotated[BlobStore, Depends(_blobs)]
Settings = Annotated[GatewaySettings, Depends(_settings)]
