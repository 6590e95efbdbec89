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

import asyncio
import json
import logging
import math
import socket
import time
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertx.deploy.batcher import MicroBatcher, QueueFull, TokenWeight
from bertx.deploy.requests import WARM_UP_TEXT, BadRequest, canonical_input, checked_list, pair_form, timed_warm_up
from bertx.deploy.server_metrics import ServerMetrics
from bertx.errors import BertxError
from bertx.console import say


LOG = logging.getLogger("bertx.serve")


@dataclass
class Limits:
    max_batch_size: int = 32  # inputs per model call
    max_wait_ms: float = 5.0  # how long a lone input waits for company
    max_queue: int = 1024  # inputs waiting per model; beyond: 503 (a bound on memory)
    max_inputs: int = 64  # inputs per request
    max_body_bytes: int = 8 * 1024 * 1024  # a request body beyond: 413 (texts are otherwise truncated, never refused)
    deadline_ms: float = 2000.0  # a request whose expected queue wait is longer gets 503 + Retry-After at once


@dataclass
class ServedModel:
    """One model of the server: how to check a request's inputs and how to predict a batch of them."""

    name: str
    folder: str
    trained: Any  # bertx.inference.loading.TrainedModel
    batcher: MicroBatcher | None = None
    info: dict = field(default_factory=dict)
    counter: TokenWeight | None = None

    @property
    def kind(self) -> str:
        return self.trained.task.name

    def check(self, inputs: Any, limits: Limits, tasks: Any = None, adapter: Any = None) -> list:
        """The request's inputs in one canonical form, or a `BadRequest` saying what is wrong."""
        if tasks is not None:
            raise BadRequest(422, f"`tasks` is for multi-task models; model {self.name!r} answers one task ({self.kind})")
        if adapter is not None:
            raise BadRequest(422, f"`adapter` is for a folder of adapters; model {self.name!r} is one model")
        from bertx.inference.predictor import reads_pairs

        pairs = reads_pairs(self.trained.task, self.trained.run)
        return [
            pair_form(i, canonical_input(i, item, self.kind), pairs, f"model {self.name!r}") for i, item in enumerate(checked_list(inputs, limits))
        ]

    def predict(self, inputs: list) -> list[dict]:
        """One batch through the model: the records `bertx predict` writes, in input order. Adapters that
        share one base model (and one tokenizer, whose Rust state is not safe to drive from two threads)
        take turns for the whole batch."""
        with getattr(self.trained.model, "lock", None) or nullcontext():
            return self._predict(inputs)

    def _predict(self, inputs: list) -> list[dict]:
        from bertx.inference.answers import AnswerPredictor
        from bertx.inference.entities import EntityPredictor
        from bertx.inference.predictor import Predictor

        if self.kind == "qa":
            answers = AnswerPredictor(self.trained).predict([q for q, _ in inputs], [c for _, c in inputs])
            return [{"question": q, **answer} for (q, _), answer in zip(inputs, answers)]
        if self.kind == "ner":
            texts = [t for t, _ in inputs]
            return [{"text": t, "entities": e} for t, e in zip(texts, EntityPredictor(self.trained).predict(texts))]
        texts = [t for t, _ in inputs]
        with_pairs = any(p is not None for _, p in inputs)
        pairs = [p or "" for _, p in inputs] if with_pairs else None
        results = Predictor.from_trained(self.trained).predict(texts, pairs)
        return [{"text": t, **({"text_pair": p} if p is not None else {}), **r} for (t, p), r in zip(inputs, results)]

    def weigh(self, item) -> int:
        """An input's cost for admission: the tokens the model reads of it."""
        if self.counter is None:
            self.counter = TokenWeight(self.trained.tokenizer, self.trained.data.max_length)
        return self.counter(item)

    def warm_up(self) -> float:
        return timed_warm_up(self, ("a warm-up question?", WARM_UP_TEXT) if self.kind == "qa" else (WARM_UP_TEXT, None))


def parse_model_args(models: list[str]) -> dict[str, str]:
    """`DIR` or `name=DIR` per model; names default to the folder's name and must be unique."""
    named: dict[str, str] = {}
    for spec in models:
        name, _, folder = spec.rpartition("=") if "=" in spec else ("", "", spec)
        name = name or Path(folder).name
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise BertxError(f"model name {name!r}: use letters, digits, '-', '_' or '.' (give it as name=DIR)")
        if name in named:
            raise BertxError(f"two models are named {name!r}; name them: bertx serve a=DIR1 b=DIR2")
        named[name] = folder
    if not named:
        raise BertxError("give at least one model folder to serve")
    return named


def load_models(named: dict[str, str], adapter_runtime: str = "onnx") -> dict[str, ServedModel]:
    """Load each served folder; adapters of one base model share one copy of it (`shared_adapters.py`); a
    folder of adapters runs as one bank in `adapter_runtime` ("onnx" or "pytorch")."""
    from bertx.deploy.adapter_bank import AdapterBankServed, is_bank_folder
    from bertx.deploy.shared_adapters import load_shared, shared_groups
    from bertx.models.encoder import load_tokenizer
    from bertx.runfolder import file_digest
    from bertx.inference.loading import load_trained, trained_with
    from bertx.tasks import TASKS
    from bertx.runfolder import read_run_config

    loaded = {}
    tokenizers: dict[str, object] = {}  # one per distinct tokenizer.json: a tokenizer weighs about 9 MB, an adapter 1
    for members in shared_groups(named, read_run_config):
        task = TASKS[read_run_config(Path(members[0][1]))["task"]]
        views = load_shared(members, task.auto_class, lambda folder: read_run_config(Path(folder)) or {})
        for name, folder in members:
            tokenizer_file = Path(folder) / "tokenizer.json"
            key = file_digest(tokenizer_file) if tokenizer_file.is_file() else folder
            if key not in tokenizers:
                tokenizers[key] = load_tokenizer(str(folder))
            loaded[name] = trained_with(views[name][0], folder, tokenizer=tokenizers[key])
    served = {}
    for name, folder in named.items():
        if is_bank_folder(folder):  # a folder of LoRA adapters of one base: batches mix adapters
            served[name] = AdapterBankServed.load(name, folder, adapter_runtime)
            continue
        if "multitask" in (read_run_config(Path(folder)) or {}):  # one encoder, many heads: one pass per batch
            from bertx.deploy.multitask_served import MultiTaskServed

            served[name] = MultiTaskServed.load(name, folder)
            continue
        trained = loaded.get(name) or load_trained(folder, device="cpu")
        labels = trained.labels if trained.task.label_kind not in ("score", "span") else []
        # No filesystem path: clients learn what a model does, not where the server keeps it.
        info = {
            "name": name,
            "task": trained.task.name,
            "labels": labels,
            "runtime": getattr(trained.model, "runtime", "pytorch"),
            "max_length": trained.data.max_length,
            "shared_base": name in loaded,
        }
        served[name] = ServedModel(name, str(folder), trained, info=info)
    return served


def create_app(models: dict[str, ServedModel], limits: Limits | None = None, admin_token: str | None = None):
    """The FastAPI app for already-loaded models (warmed up and batched when the app starts); with an
    `admin_token`, also the routes that add and remove adapters of a served folder of adapters."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    limits = limits or Limits()
    metrics = ServerMetrics()
    state = {"ready": False}
    arriving = {name: 0 for name in models}  # requests received for a model and not yet in its queue

    @asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        for model in models.values():
            cost = await loop.run_in_executor(None, model.warm_up)
            model.batcher = MicroBatcher(
                model.predict,
                limits.max_batch_size,
                limits.max_wait_ms,
                limits.max_queue,
                on_batch=lambda size, name=model.name: metrics.batch(name, size),
                arriving=lambda name=model.name: arriving[name],
                deadline_ms=limits.deadline_ms,
                seconds_per_token=cost,
                weigh=model.weigh,
            )
            model.batcher.start()
        state["ready"] = True
        yield
        state["ready"] = False
        for model in models.values():
            await model.batcher.close()

    app = FastAPI(title="bertx serve", description="Predictions of bertx models, micro-batched.", lifespan=lifespan)

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):  # unknown routes and methods: JSON like every other refusal
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        if not state["ready"]:
            return error(503, "models are loading")
        return {"ready": True, "models": list(models)}

    @app.get("/metrics")
    async def prometheus():
        for name, model in models.items():
            metrics.queue(name, model.batcher.depth() if model.batcher else 0)
        return PlainTextResponse(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def list_models():
        return {"models": [model.info for model in models.values()]}

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request):
        started = time.perf_counter()
        status = 200
        counted = name in arriving
        if counted:
            arriving[name] += 1
        try:
            model = models.get(name)
            if model is None:
                raise BadRequest(404, f"no model {name!r}; models: {', '.join(models)}")
            if model.batcher is not None:
                model.batcher.check_admission()  # a server already behind refuses before it spends time on the body
            raw = await request.body()
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
            unknown = set(body) - {"inputs", "tasks", "adapter"}
            if unknown:
                raise BadRequest(
                    422,
                    f"unknown fields {sorted(unknown)}; the body has `inputs` (and `tasks` for a multi-task "
                    "model, `adapter` for a folder of adapters)",
                )
            inputs = model.check(body["inputs"], limits, **{k: body[k] for k in ("tasks", "adapter") if k in body})
            if not state["ready"]:
                raise BadRequest(503, "models are loading")
            arriving[name] -= 1
            counted = False
            outputs = await model.batcher.submit(inputs)
            # Rendered straight to JSON: a returned dict would first walk FastAPI's `jsonable_encoder`, a
            # recursive copy of every record that cost the event loop more than the JSON itself.
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
                arriving[name] -= 1
            metrics.request(name if name in models else "(unknown)", status, time.perf_counter() - started)

    if admin_token:
        add_admin_routes(app, models, admin_token, error)
    return app


LOOPBACK = ("127.0.0.1", "::1", "testclient")  # testclient: Starlette's in-process client, never a socket peer


def add_admin_routes(app, models: dict, token: str, error) -> None:
    """POST /v1/adapters/{name} {"folder": DIR, "model": BANK} loads an adapter into a served folder of adapters
    (or replaces one of that name); DELETE /v1/adapters/{name}?model=BANK removes one. Loopback peers with the
    token only. Requests in flight finish on the version they began with (`models/lora_bank.py`)."""
    import hmac

    from fastapi import Request

    banks = {name: model for name, model in models.items() if hasattr(model, "add_adapter")}

    def refused(request: Request):
        peer = request.client.host if request.client else ""
        if peer not in LOOPBACK:
            return error(403, "the admin routes answer loopback clients only")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error(401, "the admin routes need `Authorization: Bearer TOKEN` (the token in --admin-token-file)")
        return None

    def bank_of(model: Any):
        if model is None and len(banks) == 1:
            return next(iter(banks.values()))
        if model not in banks:
            raise BadRequest(404, f"no folder of adapters named {model!r}; served: {', '.join(banks) or 'none'}")
        return banks[model]

    async def change(request: Request, adapter: str, how):
        denied = refused(request)
        if denied is not None:
            return denied
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

    @app.post("/v1/adapters/{adapter}")
    async def add_adapter(adapter: str, request: Request):
        denied = refused(request)
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
            bank = bank_of(body.get("model"))
        except BadRequest as bad:
            return error(bad.status, bad.message)
        return await change(request, adapter, lambda: {"model": bank.name, **bank.add_adapter(adapter, body["folder"])})

    @app.delete("/v1/adapters/{adapter}")
    async def remove_adapter(adapter: str, request: Request, model: str | None = None):
        denied = refused(request)  # before anything about the served banks is said
        if denied is not None:
            return denied
        try:
            bank = bank_of(model)
        except BadRequest as bad:
            return error(bad.status, bad.message)
        return await change(request, adapter, lambda: {"model": bank.name, **bank.remove_adapter(adapter)})


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before any model loads: a port in use is one line, at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise BertxError(f"--host {host}: cannot be resolved ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise BertxError(f"{host}:{port}: cannot listen there ({(err.strerror or str(err)).lower()}); choose another --port") from None
    sock.set_inheritable(True)
    return sock


def read_admin_token(path: str | None) -> str | None:
    """The admin token from its file (one line), or None when the admin routes stay off."""
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise BertxError(f"{path}: cannot read the admin token ({err})") from None
    if len(token) < 16:
        raise BertxError(f"{path}: the admin token must be at least 16 characters")
    return token


def serve(
    model_args: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    log_level: str = "warning",
    admin_token_file: str | None = None,
    adapter_runtime: str = "onnx",
) -> None:
    """Load the models and run the server until SIGTERM or Ctrl-C (then finish in-flight requests, exit 0)."""
    import os
    import signal

    import uvicorn

    from bertx.deploy.adapter_bank import RUNTIMES

    if adapter_runtime not in RUNTIMES:
        raise BertxError(f"--adapter-runtime {adapter_runtime!r}: choose one of {', '.join(RUNTIMES)}")
    os.environ.setdefault("BERTX_ONNX_SPIN", "0")  # see OnnxTaskModel: spinning threads starve the event loop
    named = parse_model_args(model_args)
    admin_token = read_admin_token(admin_token_file)
    sock = bind(host, port)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    models = load_models(named, adapter_runtime)
    app = create_app(models, limits, admin_token)
    # Uvicorn shuts down gracefully on SIGTERM / Ctrl-C, then re-raises the signal to the handler that was
    # there before it: a no-op here, so a clean shutdown exits 0 as service managers expect.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    listed = ", ".join(f"{name} ({model.kind}, {model.info['runtime']})" for name, model in models.items())
    say(f"serving {listed} on http://{host}:{port}")
    # Keep idle connections 30 s (uvicorn's default is 5): a client backing off for its Retry-After then
    # reuses its connection instead of racing the server's close of it.
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=30, timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])
