"""The FastAPI app over `ServedModel`: /ping, /health, /metadata, /invocations (see app.py).

FastAPI is imported at module level on purpose: it resolves the handlers' annotations (such as
`Request`) from this module's globals. Only `neuroflow serve` and the benchmark import this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from neuroflow.serving.app import RequestError, ServedModel, dumps, parse_columns
from neuroflow.serving.scorer import predictions_json

log = logging.getLogger(__name__)

# Batches above this many rows are scored in a worker thread so the event loop keeps serving.
_INLINE_ROWS = 256


Refresh = Callable[[ServedModel], ServedModel | None]


class _Current:
    """The model being served; a request reads it once, so a swap never splits a request."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served


async def _follow_alias(current: _Current, refresh: Refresh, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            moved = await run_in_threadpool(refresh, current.served)
        except Exception:  # registry down or a bad new version: keep serving the one we have
            log.exception("checking the alias failed; still serving %s", current.served.uri)
            continue
        if moved is not None:
            log.info("alias moved: now serving %s (was %s)", moved.uri, current.served.uri)
            current.served = moved


def create_app(served: ServedModel, refresh: Refresh | None = None, every: float = 30.0) -> FastAPI:
    """With `refresh`, the alias is re-resolved every `every` seconds and a new version is
    loaded and swapped in without a restart (requests in flight finish on the old one)."""
    current = _Current(served)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        if refresh is not None and every > 0:
            task = asyncio.create_task(_follow_alias(current, refresh, every))
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        title=f"neuroflow: {served.name}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    def headers(model: ServedModel) -> dict[str, str]:
        return {"X-Model-Version": model.version}

    def error(model: ServedModel, status: int, message: str, code: str) -> Response:
        body = {"error_code": code, "message": message}
        return JSONResponse(body, status, headers=headers(model))

    @app.get("/ping")
    @app.get("/health")
    def ping() -> Response:
        return Response("\n", 200, media_type="text/plain", headers=headers(current.served))

    @app.get("/metadata")
    def metadata() -> Response:
        model = current.served
        return JSONResponse(model.describe(), headers=headers(model))

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        model = current.served
        scorer = model.scorer
        try:
            body = await request.body()
            feeds = parse_columns(body, request.headers.get("content-type"), scorer)
        except RequestError as exc:
            return error(model, exc.status, str(exc), exc.code)
        rows = len(next(iter(feeds.values()))) if feeds else 0
        if rows == 0:
            empty: dict[str, list[Any]] = {name: [] for name in scorer.output_names}
            return JSONResponse({"predictions": empty}, headers=headers(model))
        try:
            if rows <= _INLINE_ROWS:
                outputs = scorer.run(feeds)
            else:
                outputs = await run_in_threadpool(scorer.run, feeds)
        except Exception:  # a valid request that fails to score is our bug: log it, answer 500
            log.exception("scoring %d rows with %s failed", rows, model.uri)
            message = "internal error while scoring; see the server log"
            return error(model, 500, message, "INTERNAL_ERROR")
        return Response(
            dumps(predictions_json(outputs)),
            media_type="application/json",
            headers=headers(model),
        )

    return app


def serve(
    served: ServedModel,
    host: str,
    port: int,
    refresh: Refresh | None = None,
    every: float = 30.0,
) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the model server is reachable from other machines", host)
    log.info("serving %s on http://%s:%d/invocations", served.uri, host, port)
    app = create_app(served, refresh, every)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
