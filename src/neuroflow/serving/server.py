"""The FastAPI app over `ServedModel`: /ping, /health, /metadata, /invocations (see app.py).

FastAPI is imported at module level on purpose: it resolves the handlers' annotations (such as
`Request`) from this module's globals. Only `neuroflow serve` and the benchmark import this.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from neuroflow.serving.app import RequestError, ServedModel, dumps, parse_columns
from neuroflow.serving.scorer import predictions_json

log = logging.getLogger(__name__)

# Batches above this many rows are scored in a worker thread so the event loop keeps serving.
_INLINE_ROWS = 256


def create_app(served: ServedModel) -> FastAPI:
    app = FastAPI(
        title=f"neuroflow: {served.name} v{served.version}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    scorer = served.scorer
    headers = {"X-Model-Version": served.version}
    empty: dict[str, list[Any]] = {name: [] for name in scorer.output_names}

    def error(status: int, message: str, code: str) -> Response:
        return JSONResponse({"error_code": code, "message": message}, status, headers=headers)

    @app.get("/ping")
    @app.get("/health")
    def ping() -> Response:
        return Response("\n", 200, media_type="text/plain", headers=headers)

    @app.get("/metadata")
    def metadata() -> Response:
        return JSONResponse(served.describe(), headers=headers)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        try:
            body = await request.body()
            feeds = parse_columns(body, request.headers.get("content-type"), scorer)
        except RequestError as exc:
            return error(exc.status, str(exc), exc.code)
        rows = len(next(iter(feeds.values()))) if feeds else 0
        if rows == 0:
            return JSONResponse({"predictions": empty}, headers=headers)
        try:
            if rows <= _INLINE_ROWS:
                outputs = scorer.run(feeds)
            else:
                outputs = await run_in_threadpool(scorer.run, feeds)
        except Exception:  # a valid request that fails to score is our bug: log it, answer 500
            log.exception("scoring %d rows with %s failed", rows, served.uri)
            return error(500, "internal error while scoring; see the server log", "INTERNAL_ERROR")
        return Response(
            dumps(predictions_json(outputs)), media_type="application/json", headers=headers
        )

    return app


def serve(served: ServedModel, host: str, port: int) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the model server is reachable from other machines", host)
    log.info("serving %s (@champion) on http://%s:%d/invocations", served.uri, host, port)
    uvicorn.run(create_app(served), host=host, port=port, log_level="warning", access_log=False)
