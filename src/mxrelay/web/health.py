"""`/healthz` (the process answers, with every condition), `/readyz` (can accept and store) and
`/metrics`.

Probes never need authentication. `/healthz` is always 200 while the process answers (liveness
must not restart a relay for a fault a restart cannot fix) and lists every condition, readiness
and status (health.py says which is which); `/readyz` is 503 only for the readiness conditions and
names them, so `kubectl describe` shows why a pod is not ready. Delivery-side faults appear in
both bodies as `degraded`, never as a reason to be unready.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mxrelay.health import Health
from mxrelay.metrics import Metrics


def health_routes(health: Health) -> list[Route]:
    async def healthz(request: Request) -> Response:
        degraded = health.failing()
        body: dict[str, object] = {
            "status": "degraded" if degraded else "ok",
            "ready": health.ready,
            "conditions": {
                name: condition.as_json(name)
                for name, condition in sorted(health.snapshot().items())
            },
        }
        return JSONResponse(body)

    async def readyz(request: Request) -> Response:
        unready = health.unready()
        if unready:
            return JSONResponse({"status": "not ready", "failing": unready}, status_code=503)
        degraded = health.degraded()
        body: dict[str, object] = {"status": "ready"}
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body)

    return [Route("/healthz", healthz), Route("/livez", healthz), Route("/readyz", readyz)]


def metrics_app(metrics: Metrics, health: Health) -> Starlette:
    """The application on MXRELAY_METRICS_LISTEN."""

    async def exposition(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", exposition), *health_routes(health)])
