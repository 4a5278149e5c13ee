"""`/healthz` (the process answers), `/readyz` (every readiness condition holds) and `/metrics`.

Probes never need authentication; `/readyz` names the conditions that fail, so `kubectl describe`
shows why a pod is not ready.
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
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        failing = health.failing()
        if failing:
            return JSONResponse({"status": "not ready", "failing": failing}, status_code=503)
        return JSONResponse({"status": "ready"})

    return [Route("/healthz", healthz), Route("/livez", healthz), Route("/readyz", readyz)]


def metrics_app(metrics: Metrics, health: Health) -> Starlette:
    """The application on MXRELAY_METRICS_LISTEN."""

    async def exposition(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", exposition), *health_routes(health)])
