"""`bertx serve`'s entry: the model arguments, loading each folder as its served kind, the socket bound before
any model loads, the admin token, and uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from bertx.console import say
from bertx.errors import BertxError
from bertx.serve.protocol import Limits, Served
from bertx.serve.single import ServedModel


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


def load_models(named: dict[str, str], adapter_runtime: str = "onnx") -> dict[str, Served]:
    """Load each served folder; adapters of one base model share one copy of it (`shared_adapters.py`); a
    folder of adapters runs as one bank in `adapter_runtime` ("onnx" or "pytorch")."""
    from bertx.serve.adapter_bank import AdapterBankServed, is_bank_folder
    from bertx.serve.shared_adapters import load_shared, shared_groups
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
            from bertx.serve.multitask import MultiTaskServed

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

    from bertx.serve.adapter_bank import RUNTIMES

    if adapter_runtime not in RUNTIMES:
        raise BertxError(f"--adapter-runtime {adapter_runtime!r}: choose one of {', '.join(RUNTIMES)}")
    os.environ.setdefault("BERTX_ONNX_SPIN", "0")  # see OnnxTaskModel: spinning threads starve the event loop
    named = parse_model_args(model_args)
    admin_token = read_admin_token(admin_token_file)
    sock = bind(host, port)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    models = load_models(named, adapter_runtime)
    from bertx.serve.app import create_app

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
