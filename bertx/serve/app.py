"""`bertx serve`: trained folders (PyTorch or ONNX exports) behind an HTTP API, with dynamic micro-batching.

    POST /v1/models/{name}/predict   {"inputs": [...]} -> {"model": name, "outputs": [records]}: the records
                                     `bertx predict` writes (texts, text pairs, or question + context)
    GET  /v1/models                  names, task kinds, labels
    GET  /health                     the process is alive
    GET  /ready                      every model is loaded and warmed up (503 until then)
    GET  /metrics                    Prometheus text: requests by status, latency, batch sizes, queue depth
    GET  /docs                       OpenAPI
    POST/DELETE /v1/adapters/{name}  add or remove an adapter of a served folder of adapters (off unless
                                     --admin-token-file; loopback clients with the token only)

Every refusal is a JSON `{"error": "..."}` with a 4xx status (400 for a body that is not JSON or nests
too deeply, 404 for an unknown model, 413 beyond the size limits, 422 for inputs of the wrong shape or
text that cannot be encoded, 503 with `Retry-After` when the expected queue wait passes the deadline);
a 500 means a fault of the server, says nothing of its internals, and is logged with its traceback.
One bad request harms no one: inputs are checked before they join a batch, and a batch that fails is
run again request by request (`batcher.py`). Texts longer than the model's length are truncated as
`bertx predict` truncates them, and the output record says `"truncated": true`.
Uvicorn handles SIGTERM: it stops accepting, lets requests in flight finish, and exits 0.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (`request: Request`) at run time,
# and `Request` is imported inside `create_app`, out of the module's namespace.
import asyncio
import hmac
import json
import logging
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bertx.errors import BertxError
from bertx.serve.batcher import MicroBatcher, QueueFull
from bertx.serve.metrics import ServerMetrics
from bertx.serve.protocol import BadRequest, Limits, Served

LOG = logging.getLogger("bertx.serve")
LOOPBACK = ("127.0.0.1", "::1", "testclient")  # testclient: Starlette's in-process client, never a socket peer
BODY_FIELDS = {"inputs", "tasks", "adapter"}


@dataclass
class ServerState:
    """What the routes share: the served models, the limits, the metrics, and the requests on their way."""

    models: dict[str, Served]
    limits: Limits
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    ready: bool = False
    arriving: dict[str, int] = field(default_factory=dict)  # requests received for a model and not yet in its queue

    def __post_init__(self):
        self.arriving = {name: 0 for name in self.models}


def error(status: int, message: str, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def start(state: ServerState) -> None:
    """Warm every model up (its first cost estimate), then give it its micro-batcher."""
    loop = asyncio.get_running_loop()
    for model in state.models.values():
        cost = await loop.run_in_executor(None, model.warm_up)
        model.batcher = MicroBatcher(
            model.predict,
            state.limits.max_batch_size,
            state.limits.max_wait_ms,
            state.limits.max_queue,
            on_batch=lambda size, name=model.name: state.metrics.batch(name, size),
            arriving=lambda name=model.name: state.arriving[name],
            deadline_ms=state.limits.deadline_ms,
            seconds_per_token=cost,
            weigh=model.weigh,
        )
        model.batcher.start()
    state.ready = True


async def stop(state: ServerState) -> None:
    state.ready = False
    for model in state.models.values():
        await model.batcher.close()


def read_body(raw: bytes, limits: Limits) -> dict:
    """A predict request's JSON body, within the size limit and of the documented shape, or a `BadRequest`."""
    if len(raw) > limits.max_body_bytes:
        raise BadRequest(413, f"the body has {len(raw):,} bytes; the limit is {limits.max_body_bytes:,}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"the body is not valid JSON ({err})") from None
    except RecursionError:
        raise BadRequest(400, "the body's JSON is nested too deeply") from None
    if not isinstance(body, dict) or "inputs" not in body:
        raise BadRequest(422, 'the body must be a JSON object with an `inputs` list: {"inputs": [...]}')
    unknown = set(body) - BODY_FIELDS
    if unknown:
        raise BadRequest(
            422, f"unknown fields {sorted(unknown)}; the body has `inputs` (and `tasks` for a multi-task model, `adapter` for a folder of adapters)"
        )
    return body


async def predict(state: ServerState, name: str, request) -> Any:
    """POST /v1/models/{name}/predict: refuse early what cannot be answered in time, check the body, then
    wait for the batch the inputs join."""
    from fastapi.responses import JSONResponse

    started, status = time.perf_counter(), 200
    counted = name in state.arriving
    if counted:
        state.arriving[name] += 1
    try:
        model = state.models.get(name)
        if model is None:
            raise BadRequest(404, f"no model {name!r}; models: {', '.join(state.models)}")
        if model.batcher is not None:
            model.batcher.check_admission()  # a server already behind refuses before it spends time on the body
        body = read_body(await request.body(), state.limits)
        inputs = model.check(body["inputs"], state.limits, **{k: body[k] for k in ("tasks", "adapter") if k in body})
        if not state.ready:
            raise BadRequest(503, "models are loading")
        state.arriving[name] -= 1
        counted = False
        outputs = await model.batcher.submit(inputs)
        # Rendered straight to JSON: a returned dict would first walk FastAPI's `jsonable_encoder`, a recursive
        # copy of every record that cost the event loop more than the JSON itself.
        return JSONResponse({"model": name, "outputs": outputs})
    except QueueFull as full:
        status = 503
        retry = str(max(1, math.ceil(full.retry_after_s)))
        return error(503, f"model {name!r} is busy: {full}; retry in {retry}s", headers={"Retry-After": retry})
    except BadRequest as bad:
        status = bad.status
        return error(bad.status, bad.message)
    except Exception:  # a fault of the server: logged in full, and the client learns nothing of its internals
        status = 500
        LOG.exception("prediction for model %r failed", name)
        return error(500, "internal error while predicting; the server logged it")
    finally:
        if counted:
            state.arriving[name] -= 1
        state.metrics.request(name if name in state.models else "(unknown)", status, time.perf_counter() - started)


def create_app(models: dict[str, Served], limits: Limits | None = None, admin_token: str | None = None):
    """The FastAPI app for already-loaded models (warmed up and batched when the app starts); with an
    `admin_token`, also the routes that add and remove adapters of a served folder of adapters."""
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    state = ServerState(models, limits or Limits())

    @asynccontextmanager
    async def lifespan(app):
        await start(state)
        yield
        await stop(state)

    app = FastAPI(title="bertx serve", description="Predictions of bertx models, micro-batched.", lifespan=lifespan)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):  # unknown routes and methods: JSON like every other refusal
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        return {"ready": True, "models": list(models)} if state.ready else error(503, "models are loading")

    @app.get("/metrics")
    async def prometheus():
        for name, model in models.items():
            state.metrics.queue(name, model.batcher.depth() if model.batcher else 0)
        return PlainTextResponse(state.metrics.render(), media_type=state.metrics.content_type)

    @app.get("/v1/models")
    async def list_models():
        return {"models": [model.info for model in models.values()]}

    @app.post("/v1/models/{name}/predict")
    async def predict_route(name: str, request: Request):
        return await predict(state, name, request)

    if admin_token:
        add_admin_routes(app, Admin(models, admin_token))
    return app


@dataclass
class Admin:
    """The admin routes' view: the served folders of adapters, and the token that opens them."""

    models: dict
    token: str

    @property
    def banks(self) -> dict:
        return {name: model for name, model in self.models.items() if hasattr(model, "add_adapter")}

    def refused(self, request):
        """A response when the caller may not use the admin routes (not loopback, wrong token), else None."""
        peer = request.client.host if request.client else ""
        if peer not in LOOPBACK:
            return error(403, "the admin routes answer loopback clients only")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return error(401, "the admin routes need `Authorization: Bearer TOKEN` (the token in --admin-token-file)")
        return None

    def bank_of(self, model: Any):
        banks = self.banks
        if model is None and len(banks) == 1:
            return next(iter(banks.values()))
        if model not in banks:
            raise BadRequest(404, f"no folder of adapters named {model!r}; served: {', '.join(banks) or 'none'}")
        return banks[model]

    async def change(self, adapter: str, how):
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, how)
            LOG.warning("admin: %s", result)
            return result
        except BadRequest as bad:
            return error(bad.status, bad.message)
        except KeyError:
            return error(404, f"no adapter {adapter!r}")
        except BertxError as err:
            return error(422, str(err))

    async def add(self, adapter: str, request):
        denied = self.refused(request)
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return error(400, "the body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("folder"), str):
            return error(422, 'the body must be {"folder": "ADAPTER_DIR"} (and "model": NAME with several folders of adapters)')
        try:
            body["folder"].encode("utf-8")
        except UnicodeEncodeError as err:
            return error(422, f"`folder` holds an unpaired surrogate at character {err.start}; send a valid path")
        if not adapter.replace("-", "").replace("_", "").replace(".", "").isalnum():
            return error(422, f"adapter name {adapter!r}: use letters, digits, '-', '_' or '.'")
        try:
            bank = self.bank_of(body.get("model"))
        except BadRequest as bad:
            return error(bad.status, bad.message)
        return await self.change(adapter, lambda: {"model": bank.name, **bank.add_adapter(adapter, body["folder"])})

    async def remove(self, adapter: str, request, model: str | None):
        denied = self.refused(request)  # before anything about the served banks is said
        if denied is not None:
            return denied
        try:
            bank = self.bank_of(model)
        except BadRequest as bad:
            return error(bad.status, bad.message)
        return await self.change(adapter, lambda: {"model": bank.name, **bank.remove_adapter(adapter)})


def add_admin_routes(app, admin: Admin) -> None:
    """POST /v1/adapters/{name} {"folder": DIR, "model": BANK} loads an adapter into a served folder of adapters
    (or replaces one of that name); DELETE /v1/adapters/{name}?model=BANK removes one. Loopback peers with the
    token only. Requests in flight finish on the version they began with (`models/lora_bank.py`)."""
    from fastapi import Request

    @app.post("/v1/adapters/{adapter}")
    async def add_adapter(adapter: str, request: Request):
        return await admin.add(adapter, request)

    @app.delete("/v1/adapters/{adapter}")
    async def remove_adapter(adapter: str, request: Request, model: str | None = None):
        return await admin.remove(adapter, request, model)
