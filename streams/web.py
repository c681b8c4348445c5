"""The worker's HTTP views: ``/metrics``, ``/health``, ``/ready`` and ``/models``.

Served by Faust's web server on ``DRIFTLINE_WEB_HOST``:``DRIFTLINE_WEB_PORT``
(127.0.0.1 unless exposed on purpose). Faust's own views (``/``, ``/router``,
``/table``, ``/graph``, ``/stats``) are not served: see :class:`OwnViewsOnly`.
Every body is JSON from :func:`streams.safe_json.dumps`, so a numpy scalar or a
NaN a River metric returns cannot turn a view into a 500.

Nothing here changes state today. A view that will (reset, rollback, promotion)
must be wrapped in the :class:`TokenGuard` :func:`install` returns: the request must carry
``Authorization: Bearer <DRIFTLINE_WEB_TOKEN>``, compared in constant time; a
missing or wrong token is a 401 and counted in
``driftline_web_unauthorized_total``.
"""

import functools
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from pydantic import SecretStr

from streams.safe_json import dumps, metric_value
from streams.scoring import ScoringService

JSON = "application/json"
Handler = Callable[..., Awaitable[Response]]


class OwnViewsOnly(AiohttpWeb):
    """Faust's aiohttp web server without any of Faust's built-in views.

    Faust mounts ``/router`` and ``/table`` (which answer a 500 with a traceback
    for a worker without tables), and ``/`` (its index) whatever its settings say;
    Driftline serves only the views of this module.
    """

    default_blueprints = production_blueprints = debug_blueprints = ()
    optional_blueprints = ()


def token_matches(authorization: str | None, token: SecretStr | None) -> bool:
    """True when ``authorization`` is ``Bearer <token>``; never when no token is set.

    Compared with :func:`hmac.compare_digest`, so the time taken does not tell
    how much of a guess was right.

    >>> secret = SecretStr("s3cret-token")
    >>> token_matches("Bearer s3cret-token", secret), token_matches("Bearer s3cret", secret)
    (True, False)
    >>> token_matches(None, secret), token_matches("Bearer ", None)
    (False, False)
    """
    if token is None or not token.get_secret_value() or authorization is None:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode())


class TokenGuard:
    """Guards state-changing views with ``DRIFTLINE_WEB_TOKEN``; counts refusals.

    ``registry`` receives ``driftline_web_unauthorized_total``. Use
    :meth:`__call__` as a decorator on a view handler ``(self, request, ...)``:
    without the token the handler is not run and the answer is a 401 that says
    nothing about the token.
    """

    def __init__(self, token: SecretStr | None, registry: CollectorRegistry) -> None:
        self.token = token
        self.refused = Counter("driftline_web_unauthorized_total",
                               "HTTP requests refused for a missing or wrong "
                               "DRIFTLINE_WEB_TOKEN.", registry=registry)

    def __call__(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            if not token_matches(request.headers.get("Authorization"), self.token):
                self.refused.inc()
                return view.bytes(dumps({"error": "unauthorized"}), content_type=JSON,
                                  status=401, headers={"WWW-Authenticate": "Bearer"})
            return await handler(view, request, *args, **kwargs)
        return guarded


def feedback_view(part: Any, name: str) -> dict[str, Any]:
    """Late labels of one (model, partition): predictions waiting, feedback held, and the
    checkpointed outcome totals (equal after a crash to an uninterrupted run's)."""
    store = part.feedback.stores.get(name)
    if store is None:
        return {"pending": 0, "held": 0, "totals": {}}
    return {"pending": len(store.entries), "held": len(store.early),
            "totals": dict(store.totals)}


def models_view(scoring: ScoringService) -> dict[str, Any]:
    """Per model and partition: version, counts, metric, last drift, checkpoint."""
    out: dict[str, Any] = {}
    now = time.time()
    for partition, part in scoring.processor.partitions.items():
        for name, learner in part.learners.items():
            durable_at = part.durable_at
            out.setdefault(name, {})[str(partition)] = {
                "version": learner.n_learned,
                "scored": learner.n_scored,
                "learned": learner.n_learned,
                "resets": learner.n_resets,
                "metric": {"name": learner.spec.metric, "value": metric_value(learner.metric)},
                "last_drift": learner.last_alert,
                "generation": None if learner.challenger is None else
                learner.challenger.generation,
                "challenger": None if learner.challenger is None else learner.challenger.view(),
                "checkpoint": None if part.durable < 0 else {
                    "offset": part.durable,
                    "age_seconds": None if durable_at is None else round(now - durable_at, 3)},
                "offset": part.offset,
                "feedback": feedback_view(part, name),
            }
    return out


def install(app: faust.App, scoring: ScoringService) -> TokenGuard:
    """Register the views on ``app``; return the guard for views that change state."""
    guard = TokenGuard(scoring.settings.web_token, scoring.metrics.registry)

    def json(view: View, body: Any, status: int = 200) -> Response:
        return view.bytes(dumps(body), content_type=JSON, status=status)

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        scoring.refresh_gauges()
        return self.bytes(scoring.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return json(self, {"status": "ok"})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        body = {"ready": scoring.ready,
                "assigned": scoring.partitions(),
                "restored": scoring.partitions(restored=True)}
        return json(self, body, status=200 if scoring.ready else 503)

    @app.page("/models")
    async def models(self: View, request: Request) -> Response:
        return json(self, models_view(scoring))

    return guard
