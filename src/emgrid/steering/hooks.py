"""Forward hooks on a decoder layer's output (the residual stream after that layer): read it, add a vector to it,
or project a direction out of it, and remove the hook on exit.

Two facts of transformers 5.x this relies on (measured): decoder layers return a Tensor (older versions: a tuple
whose first element is the hidden states; both are handled), and `output_hidden_states` is recorded by hooks the
model registers at load time, so our hooks are registered with `prepend=True`: otherwise the recorded hidden states
would be the ones from before our change.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator


def decoder_layers(model):
    """The decoder layer list of a causal LM, through a PEFT wrapper if there is one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(inner, "model", inner)
    layers = getattr(body, "layers", None)
    if layers is None:
        raise TypeError(f"{type(inner).__name__}: no decoder layers at .model.layers (not a decoder-only LM?)")
    return layers


def _replace_hidden(output, fn: Callable):
    """Apply `fn` to a decoder layer's hidden-state output, keeping the output's shape (Tensor or tuple)."""
    if isinstance(output, tuple):
        return (fn(output[0]), *output[1:])
    return fn(output)


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def layer_hook(model, layer: int, fn: Callable) -> Iterator[None]:
    """While active, decoder layer `layer`'s hidden-state output h is replaced by fn(h) (before anything the model
    itself records)."""
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise IndexError(
            f"layer {layer} out of range: the model has {len(layers)} decoder layers (0..{len(layers) - 1})"
        )
    handle = layers[layer].register_forward_hook(
        lambda _module, _inputs, output: _replace_hidden(output, fn), prepend=True
    )
    try:
        yield
    finally:
        handle.remove()


def add_vector(model, layer: int, vector) -> AbstractContextManager[None]:
    """Add `vector` (hidden size) at every position of layer `layer`'s output."""

    def fn(h):
        return h + vector.to(device=h.device, dtype=h.dtype)

    return layer_hook(model, layer, fn)


def ablate_direction(model, layer: int, direction) -> AbstractContextManager[None]:
    """Project `direction` out of layer `layer`'s output at every position: h - (h . v_hat) v_hat."""
    import torch

    v_hat = direction / torch.linalg.vector_norm(direction)

    def fn(h):
        v = v_hat.to(device=h.device, dtype=h.dtype)
        return h - (h @ v).unsqueeze(-1) * v

    return layer_hook(model, layer, fn)


@contextmanager
def capture_layers(model, layers: list[int] | None = None) -> Iterator[dict[int, list]]:
    """Record each listed layer's hidden-state output (every forward appends one tensor, detached) into the yielded
    dict {layer: [tensors]}; all layers when `layers` is None. Registered last (not prepended), so it records the
    output after every steering hook, whenever that was registered."""
    all_layers = decoder_layers(model)
    wanted = range(len(all_layers)) if layers is None else layers
    store: dict[int, list] = {i: [] for i in wanted}
    handles = [
        all_layers[i].register_forward_hook(lambda _m, _in, out, i=i: store[i].append(_hidden(out).detach()))
        for i in wanted
    ]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
