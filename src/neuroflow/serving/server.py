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

from neuroflow.serving import generate
from neuroflow.serving.app import RequestError, ServedModel, dumps, parse_request
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


IGNORED_HEADER = "X-Neuroflow-Ignored-Columns"
UNSEEN_HEADER = "X-Neuroflow-Unseen-Categories"


def create_app(
    served: ServedModel,
    refresh: Refresh | None = None,
    every: float = 30.0,
    *,
    strict: bool = False,
) -> FastAPI:
    """With `refresh`, the alias is re-resolved every `every` seconds and a new version is
    loaded and swapped in without a restart (requests in flight finish on the old one).
    With `strict`, unknown columns and unseen categories are refused (400)."""
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

    def error(model: ServedModel, exc: RequestError) -> Response:
        return JSONResponse(exc.body(), exc.status, headers=headers(model))

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
        if scorer.task == generate.GENERATIVE:  # a generator: {"n": N} in, N images out
            try:
                answer = generate.generate_json(scorer.session, await request.body())
            except generate.GenerateRequestError as exc:
                return error(model, RequestError(400, str(exc), "BAD_REQUEST"))
            return Response(dumps(answer), media_type="application/json", headers=headers(model))
        try:
            body = await request.body()
            content_type = request.headers.get("content-type")
            batch = parse_request(body, content_type, model, strict=strict)
        except RequestError as exc:
            if exc.code == "UNSEEN_CATEGORY":
                log.warning("refused (--strict) on %s: %s", model.uri, exc)
            return error(model, exc)
        screen, rows = batch.screen, batch.rows
        screen.log(log, f"/invocations on {model.uri}", notes=False)
        notes = {**headers(model), UNSEEN_HEADER: str(screen.unseen_count)}
        if screen.ignored:
            notes[IGNORED_HEADER] = ",".join(screen.ignored)
        if rows == 0:
            empty: dict[str, list[Any]] = {name: [] for name in scorer.output_names}
            return JSONResponse({"predictions": empty}, headers=notes)
        try:
            if rows <= _INLINE_ROWS:
                outputs = scorer.run(batch.feeds)
            else:
                outputs = await run_in_threadpool(scorer.run, batch.feeds)
        except Exception:  # a valid request that fails to score is our bug: log it, answer 500
            log.exception("scoring %d rows with %s failed", rows, model.uri)
            message = "internal error while scoring; see the server log"
            return error(model, RequestError(500, message, "INTERNAL_ERROR"))
        return Response(
            dumps(predictions_json(outputs)), media_type="application/json", headers=notes
        )

    return app


def serve(
    served: ServedModel,
    host: str,
    port: int,
    refresh: Refresh | None = None,
    every: float = 30.0,
    *,
    strict: bool = False,
) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the model server is reachable from other machines", host)
    log.info("serving %s on http://%s:%d/invocations", served.uri, host, port)
    app = create_app(served, refresh, every, strict=strict)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
