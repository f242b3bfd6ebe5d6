"""`python -m pipelines.worker`: a `process` worker for prefect.yaml's pool that stops on SIGTERM.

The same ProcessWorker `prefect worker start --type process` runs, started from this checkout.
Prefect 3.8's CLI answers SIGTERM by sending itself SIGINT, which the event loop turns into a
cancellation the worker's loops swallow: it logs the signal and keeps polling (a second SIGTERM
kills it). Here SIGTERM and SIGINT stop the worker's loops and the process exits 0; a flow run
it started keeps its own process (the workspace lock is released when that process ends).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import yaml


def pool_name(root: Path) -> str:
    """The work pool prefect.yaml's deployments run on."""
    config = yaml.safe_load((root / "prefect.yaml").read_text(encoding="utf-8")) or {}
    pools = {d["work_pool"]["name"] for d in config.get("deployments", []) if d.get("work_pool")}
    if len(pools) != 1:
        raise SystemExit(f"{root / 'prefect.yaml'}: expected one work pool, found {sorted(pools)}")
    return pools.pop()


async def serve(pool: str, name: str | None, limit: int | None) -> None:
    from prefect.workers.process import ProcessWorker

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = ProcessWorker(work_pool_name=pool, name=name, limit=limit)
    running = asyncio.create_task(worker.start(printer=print))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # the worker ended on its own: surface its error, if any
        return
    print(f"Worker {worker.name!r}: stop requested, shutting down")
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    print(f"Worker {worker.name!r} stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pool", help="work pool (default: the one in prefect.yaml)")
    parser.add_argument("--name", help="worker name shown in the UI")
    parser.add_argument("--limit", type=int, help="flow runs at once (default: no limit)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.pool or pool_name(Path.cwd()), args.name, args.limit))


if __name__ == "__main__":
    main()
