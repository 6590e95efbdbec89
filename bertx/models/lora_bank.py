"""Many LoRA adapters of one base model in one batch: the base weights run once for every row, and each
row adds its own adapter's low-rank update (the idea of S-LoRA and Punica, in plain torch).

    every LoRA target (a Linear of the encoder) -> BankedLinear:
        y = x W^T + b                          the base weights, once for the whole batch
          + (x A[a]) B[a]                      row by row, each row's adapter a: factors gathered per row,
                                               two batched matrix products (B pre-scaled by alpha / r)
    every module an adapter saves in full (the classifier, a pooler) -> BankedHead:
        rows grouped by adapter, each group through its own adapter's weights; outputs padded to the
        widest (adapters may have different label counts: each row keeps its own adapter's first columns)

The factors live in a `BankState`: stacked tensors per target and per head module, an immutable
snapshot. Adding or removing an adapter builds a new snapshot and swaps it in; a forward pass keeps the
snapshot it started with, so a request in flight finishes on the version it began with, and a removed
adapter's memory returns when the last pass that used it ends.

Only what merges exactly into this form is banked: LoRA without DoRA, without trained biases and without
per-module rank or alpha patterns, on Linear targets; heads that are Linear. Anything else is refused by
`read_adapter` with its reason (such adapters are served merged, one model each).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bertx.errors import BertxError

PREFIX = "base_model.model."  # peft's key prefix in adapter_model.safetensors
_ACTIVE = threading.local()  # (state, rows) of the forward pass running in this thread


@dataclass
class AdapterFactors:
    """One adapter as read from its folder: LoRA factors per target, full weights per head module."""

    name: str
    folder: str
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]  # path -> (A^T: (in, r), scaled B^T: (r, out))
    heads: dict[str, tuple[torch.Tensor, torch.Tensor | None]]  # path -> (weight (out, in), bias (out,))
    labels: list[str]


def read_adapter(name: str, folder: str | Path, labels: list[str]) -> AdapterFactors:
    """An adapter folder's LoRA factors and heads, or one line saying why it cannot join a bank."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        settings = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "adapter_model.safetensors"))
    except Exception as err:  # OSError, JSON's ValueError, safetensors' own error for a cut or foreign file
        raise BertxError(f"{folder}: not a readable LoRA adapter folder ({type(err).__name__}: {err})") from None
    if settings.get("peft_type") != "LORA":
        raise BertxError(f"{folder}: a {settings.get('peft_type')} adapter; only LoRA adapters share a mixed batch")
    for option, plain in (("use_dora", False), ("rank_pattern", {}), ("alpha_pattern", {}), ("bias", "none"), ("lora_bias", False)):
        if settings.get(option, plain) not in (plain, None):
            raise BertxError(
                f"{folder}: adapter_config {option}={settings[option]!r}; a mixed batch takes plain LoRA (serve this adapter merged: `bertx merge`)"
            )
    r = int(settings["r"])
    scale = float(settings["lora_alpha"]) / (r**0.5 if settings.get("use_rslora") else r)
    lora, heads = {}, {}
    for key, value in tensors.items():
        path = key[len(PREFIX) :] if key.startswith(PREFIX) else key
        if ".lora_A." in path:
            target = path.split(".lora_A.")[0]
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            lora[target] = (value.float().t().contiguous(), (b.float() * scale).t().contiguous())  # (in, r), (r, out)
        elif ".lora_B." in path or ".lora_embedding" in path:
            continue
        else:
            module, kind = path.rsplit(".", 1)
            weight, bias = heads.get(module, (None, None))
            heads[module] = (value.float(), bias) if kind == "weight" else (weight, value.float())
    if not lora:
        raise BertxError(f"{folder}: the adapter holds no LoRA factors")
    return AdapterFactors(name, str(folder), lora, heads, labels)


@dataclass(frozen=True)
class BankState:
    """An immutable snapshot of the bank: names in slot order and the stacked tensors."""

    names: tuple[str, ...] = ()
    lora: dict = field(default_factory=dict)  # path -> (A (N, in, r), B (N, r, out))
    heads: dict = field(default_factory=dict)  # path -> (W (N, out_max, in), b (N, out_max))
    labels: tuple = ()  # per slot: the adapter's labels
    folders: tuple = ()

    def slot(self, name: str) -> int:
        return self.names.index(name)


def zero_padded(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """`t` grown to `size` along `dim` with zeros (a zero rank or head column adds nothing)."""
    if t.shape[dim] >= size:
        return t
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t, t.new_zeros(shape)], dim=dim)


def appended(state: BankState, adapter: AdapterFactors, base_modules: dict[str, nn.Linear]) -> BankState:
    """A new snapshot: `state`'s stacked tensors with one more adapter in the last slot. Ranks and head widths
    are padded with zeros (zeros add nothing); only the stacks are kept, never a second copy per adapter."""
    n = len(state.names)
    lora = {}
    for path in sorted(set(state.lora) | set(adapter.lora)):
        base = base_modules[path]
        a, b = adapter.lora.get(path, (torch.zeros(base.in_features, 1), torch.zeros(1, base.out_features)))
        A, B = state.lora.get(path, (torch.zeros(n, base.in_features, 1), torch.zeros(n, 1, base.out_features)))
        r = max(A.shape[2], a.shape[1])
        lora[path] = (torch.cat([zero_padded(A, 2, r), zero_padded(a, 1, r)[None]]), torch.cat([zero_padded(B, 1, r), zero_padded(b, 0, r)[None]]))
    heads = {}
    for path in sorted(set(state.heads) | set(adapter.heads)):
        base = base_modules[path]
        default = (base.weight.detach().float(), base.bias.detach().float() if base.bias is not None else None)
        weight, bias = adapter.heads.get(path, default)
        bias = bias if bias is not None else torch.zeros(weight.shape[0])
        if path in state.heads:
            W, b = state.heads[path]
        else:  # a module the earlier adapters did not save: they read the base model's own weights
            W = default[0][None].expand(n, -1, -1).clone()
            b = (default[1] if default[1] is not None else torch.zeros(default[0].shape[0]))[None].expand(n, -1).clone()
        width = max(W.shape[1], weight.shape[0])
        heads[path] = (
            torch.cat([zero_padded(W, 1, width), zero_padded(weight, 0, width)[None]]),
            torch.cat([zero_padded(b, 1, width), zero_padded(bias, 0, width)[None]]),
        )
    return BankState(state.names + (adapter.name,), lora, heads, state.labels + (tuple(adapter.labels),), state.folders + (adapter.folder,))


def stacked(adapters: list[AdapterFactors], base_modules: dict[str, nn.Linear]) -> BankState:
    """The snapshot of many adapters at once (loading a folder): one stack per tensor, not one per adapter."""
    lora = {}
    for path in sorted({p for a in adapters for p in a.lora}):
        base = base_modules[path]
        r = max(a.lora[path][0].shape[1] for a in adapters if path in a.lora)
        none = (torch.zeros(base.in_features, r), torch.zeros(r, base.out_features))
        pairs = [a.lora.get(path, none) for a in adapters]
        lora[path] = (torch.stack([zero_padded(x, 1, r) for x, _ in pairs]), torch.stack([zero_padded(y, 0, r) for _, y in pairs]))
    heads = {}
    for path in sorted({p for a in adapters for p in a.heads}):
        base = base_modules[path]
        default = (base.weight.detach().float(), base.bias.detach().float() if base.bias is not None else None)
        own = [a.heads.get(path, default) for a in adapters]
        own = [(w, b if b is not None else torch.zeros(w.shape[0])) for w, b in own]
        width = max(w.shape[0] for w, _ in own)
        heads[path] = (torch.stack([zero_padded(w, 0, width) for w, _ in own]), torch.stack([zero_padded(b, 0, width) for _, b in own]))
    return BankState(tuple(a.name for a in adapters), lora, heads, tuple(tuple(a.labels) for a in adapters), tuple(a.folder for a in adapters))


def without(state: BankState, name: str) -> BankState:
    """A new snapshot without one adapter (the stacks re-indexed; the old snapshot lives while a pass uses it)."""
    slot = state.slot(name)
    keep = torch.tensor([i for i in range(len(state.names)) if i != slot], dtype=torch.long)
    pick = lambda pair: tuple(t.index_select(0, keep) for t in pair)  # noqa: E731
    drop = lambda items: tuple(x for i, x in enumerate(items) if i != slot)  # noqa: E731
    return BankState(
        drop(state.names),
        {p: pick(v) for p, v in state.lora.items()},
        {p: pick(v) for p, v in state.heads.items()},
        drop(state.labels),
        drop(state.folders),
    )


class BankedLinear(nn.Module):
    """A base Linear plus each row's own adapter's low-rank update."""

    def __init__(self, base: nn.Linear, path: str):
        super().__init__()
        self.base, self.path = base, path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        state, rows, single = _ACTIVE.pass_
        factors = state.lora.get(self.path)
        if factors is None:
            return y
        A, B = factors
        if single is not None:  # every row the same adapter: two plain matrix products
            return y + (x @ A[single]) @ B[single]
        # Encoder Linears see (rows, T, in) already: no reshape there, which in the ONNX graph would add a chain of
        # shape operators per target, a third of the graph's time at batch 1.
        flat = x.dim() != 3
        x3 = x.reshape(x.shape[0], -1, x.shape[-1]) if flat else x
        delta = torch.bmm(torch.bmm(x3, A.index_select(0, rows)), B.index_select(0, rows))  # (rows, T, out)
        return y + (delta.reshape(y.shape) if flat else delta)


class BankedHead(nn.Module):
    """A module each adapter saves in full: every row through its own adapter's weights."""

    def __init__(self, base: nn.Linear, path: str):
        super().__init__()
        self.base, self.path = base, path  # the base weights: what an adapter that saved none of this module reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state, rows, single = _ACTIVE.pass_
        W, b = state.heads[self.path]
        if single is not None:
            return nn.functional.linear(x, W[single], b[single])
        if torch.jit.is_tracing():  # the ONNX graph: no Python loop over groups, every row its own gathered weights
            W, b = W.index_select(0, rows), b.index_select(0, rows)  # (rows, out, in), (rows, out)
            if x.dim() == 2:
                return torch.bmm(W, x.unsqueeze(-1)).squeeze(-1) + b
            return torch.bmm(x, W.transpose(1, 2)) + b.unsqueeze(1)
        out = x.new_zeros(*x.shape[:-1], W.shape[1])
        for slot in rows.unique().tolist():
            picked = (rows == slot).nonzero().squeeze(1)
            out[picked] = nn.functional.linear(x.index_select(0, picked), W[slot], b[slot])
        return out


class LoraBank:
    """One base task model whose LoRA targets and heads read the bank; `forward(rows, **batch)`."""

    def __init__(self, model: nn.Module, targets: list[str], head_paths: list[str]):
        self.model = model.eval()
        self.base_modules: dict[str, nn.Linear] = {}
        for path in targets + head_paths:
            module = model.get_submodule(path)
            if not isinstance(module, nn.Linear):
                raise BertxError(f"{path}: a {type(module).__name__}; a mixed batch banks Linear layers only")
            self.base_modules[path] = module
            parent, _, child = path.rpartition(".")
            wrapper = BankedHead(module, path) if path in head_paths else BankedLinear(module, path)
            setattr(model.get_submodule(parent) if parent else model, child, wrapper)
        self.targets, self.head_paths = set(targets), set(head_paths)
        self.state = BankState()
        self._writer = threading.Lock()

    def fits(self, adapter: AdapterFactors) -> None:
        """One line when an adapter reaches modules this bank was not built for."""
        extra = (set(adapter.lora) - self.targets) or (set(adapter.heads) - self.head_paths)
        if extra:
            raise BertxError(
                f"{adapter.folder}: the adapter adapts {sorted(extra)[0]}, which the other adapters of this base do not; serve it in its own bank"
            )

    def add(self, adapter: AdapterFactors) -> None:
        """Put an adapter in (replacing one of the same name): a new snapshot, swapped in."""
        self.fits(adapter)
        with self._writer:
            state = without(self.state, adapter.name) if adapter.name in self.state.names else self.state
            self.state = appended(state, adapter, self.base_modules)

    def load(self, adapters: list[AdapterFactors]) -> None:
        """Put many adapters in at once (names unique)."""
        for adapter in adapters:
            self.fits(adapter)
        with self._writer:
            self.state = stacked(adapters, self.base_modules)

    def remove(self, name: str) -> None:
        with self._writer:
            if name not in self.state.names:
                raise KeyError(name)
            self.state = without(self.state, name)

    def traced(self, state: BankState, rows: torch.Tensor, **batch) -> torch.Tensor:
        """The logits with every row gathered (what the ONNX graph of `export/bank_graph.py` records)."""
        _ACTIVE.pass_ = (state, rows, None)
        try:
            return self.model(**batch).logits
        finally:
            _ACTIVE.pass_ = None

    @torch.inference_mode()
    def forward(self, state: BankState, slots: list[int], **batch) -> torch.Tensor:
        """The logits (rows, widest head) of one batch, row i through adapter `slots[i]` of `state`."""
        rows = torch.tensor(slots, dtype=torch.long)
        single = slots[0] if len(set(slots)) == 1 else None
        _ACTIVE.pass_ = (state, rows, single)
        try:
            return self.model(**batch).logits
        finally:
            _ACTIVE.pass_ = None

    def release_base(self) -> None:
        """Drop the PyTorch model once another runtime holds its weights: what adding an adapter still reads
        of it (each target's shape, the heads' base weights) stays, the rest returns to the allocator."""
        for path in self.targets:
            base = self.base_modules[path]
            self.base_modules[path] = nn.Linear(base.in_features, base.out_features, bias=False, device="meta")
        self.model = None

    def size_bytes(self) -> int:
        """Bytes the adapters' stacked tensors take (the base model excluded)."""
        state = self.state
        tensors = [t for pair in (*state.lora.values(), *state.heads.values()) for t in pair]
        return sum(t.numel() * t.element_size() for t in tensors)
