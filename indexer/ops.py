"""The operations endpoint: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (ready).

`/readyz` answers 200 only when every readiness check passes and 503 otherwise, with a
JSON body naming each check, so an operator sees why. The daemon supplies the checks: an
active replica is ready when the database answers, the websockets are connected (when
there is anything to watch) and the slot lag is under its threshold; a standby is ready
when it reaches the database, able to take over (an unready standby would stall a
rolling update and every node drain behind its disruption budget).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from indexer.errors import ConfigError

ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True, slots=True)
class OpsServer:
    runner: web.AppRunner
    port: int

    async def close(self) -> None:
        await self.runner.cleanup()


def make_app(registry: CollectorRegistry, checks: Mapping[str, ReadinessCheck]) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        results: dict[str, dict[str, object]] = {}
        ready = True
        for name, check in checks.items():
            try:
                ok, detail = await check()
            except Exception as exc:  # a failing check is a 503, never a 500
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": ok, "detail": detail}
            ready = ready and ok
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_ops_server(registry: CollectorRegistry, checks: Mapping[str, ReadinessCheck],
                           *, host: str = "0.0.0.0", port: int = 9108) -> OpsServer:  # noqa: S104
    """Serve the endpoints; ``port=0`` picks a free port (tests)."""
    runner = web.AppRunner(make_app(registry, checks), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:  # most often another process on the metrics port
        await runner.cleanup()
        raise ConfigError(f"the metrics endpoint cannot listen on {host}:{port}: {exc.strerror or exc}"
                          " (set AMOCA_METRICS_PORT or --metrics-port)") from exc
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return OpsServer(runner=runner, port=bound)
