"""Streaming-native layers: left context carried as explicit state tensors.

Every layer here runs two ways with the same weights:

- offline, ``layer(x)``: the left context is zeros (causal zero padding);
- streaming, ``layer(x, state)``: the left context comes from ``state`` (a
  :class:`StreamState`, one tensor per stateful layer) and the layer writes its
  new context back into it.

Feeding a sequence in chunks of any size through the streaming path, starting
from zero state, gives the offline output (a test holds it to 1e-5). Because
the state is a flat list of tensors, a network wrapped by
:class:`StreamingModule` exports to ONNX as ``(x, state_in_0..n) -> (y,
state_out_0..n)`` (the reading of EnCodec's ``modules/conv.py`` and RAVE's
cached convolutions, with the cache made explicit so that it survives export).

Causal convolution, kernel ``k``, dilation ``d``, context ``c = (k - 1) d``::

    state (c samples) | new chunk x (T samples)
    [s s s s s s s s s|x x x x x x x x]
     \\______ conv, no padding ______/   -> T outputs
    new state = last c samples of [state | x]

Causal transposed convolution, stride ``r``, kernel ``K`` (MelGAN: ``K = 2r``)::

    T inputs -> full output (T - 1) r + K samples
    [ y_0 ........................ y_{Tr-1} | tail (K - r) ]
      + previous tail added on the first K - r samples
    emit the first T r samples; keep the tail (bias excluded) as state
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
import torch.nn.utils.parametrize  # noqa: F401  (is_parametrized)
from torch.nn.utils.parametrizations import weight_norm as _weight_norm


class StreamState:
    """State tensors of one streaming call, addressed by layer.

    ``inputs`` are the state tensors fed in, in the order of
    :func:`stateful_layers`; layers ``take`` theirs and ``put`` the new one.
    """

    def __init__(self, layers: Sequence[nn.Module], inputs: Sequence[torch.Tensor]):
        if len(layers) != len(inputs):
            raise ValueError(f"{len(layers)} stateful layers but {len(inputs)} state tensors")
        self.index = {id(layer): i for i, layer in enumerate(layers)}
        self.inputs = list(inputs)
        self.outputs: list[torch.Tensor | None] = [None] * len(inputs)

    def take(self, layer: nn.Module) -> torch.Tensor:
        return self.inputs[self.index[id(layer)]]

    def put(self, layer: nn.Module, value: torch.Tensor) -> None:
        self.outputs[self.index[id(layer)]] = value

    def result(self) -> list[torch.Tensor]:
        missing = [i for i, t in enumerate(self.outputs) if t is None]
        if missing:
            raise RuntimeError(f"stateful layers {missing} were not run in this streaming call")
        return list(self.outputs)  # type: ignore[arg-type]


class Stateful(nn.Module):
    """A layer with streaming state; subclasses define ``state_shape``."""

    state_dtype = torch.float32

    @property
    def has_state(self) -> bool:
        return True

    def state_shape(self, batch: int) -> tuple[int, ...]:
        raise NotImplementedError


def stateful_layers(module: nn.Module) -> list[Stateful]:
    """Stateful layers of ``module`` in registration order: the order of the state tensors."""
    return [m for m in module.modules() if isinstance(m, Stateful) and m.has_state]


def initial_state(module: nn.Module, batch: int = 1, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Zero state for every stateful layer (what a fresh stream starts with)."""
    return [torch.zeros(layer.state_shape(batch), dtype=layer.state_dtype, device=device)
            for layer in stateful_layers(module)]


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases on every conv / linear (the MelGAN author's advice)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                if torch.nn.utils.parametrize.is_parametrized(m, "weight"):
                    # Assignment goes through the weight-norm parametrisation's right_inverse.
                    m.weight = torch.randn_like(m.weight) * std
                else:
                    m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()


def maybe_weight_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    return _weight_norm(layer) if enabled else layer


class StreamConv1d(Stateful):
    """``(batch, in_ch, T) -> (batch, out_ch, T)`` stride-1 convolution.

    ``causal=True``: left context only, streamable (state ``(batch, in_ch, (k-1) d)``).
    ``causal=False``: centred ("same") padding, offline only (discriminators).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 groups: int = 1, bias: bool = True, causal: bool = True, weight_norm: bool = False):
        super().__init__()
        self.conv = maybe_weight_norm(nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation,
                                                groups=groups, bias=bias), weight_norm)
        self.in_channels = in_channels
        self.context = (kernel_size - 1) * dilation
        self.causal = causal

    @property
    def has_state(self) -> bool:
        return self.causal and self.context > 0

    def state_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.in_channels, self.context)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if self.context == 0:
            return self.conv(x)
        if not self.causal:
            if state is not None:
                raise RuntimeError("a non-causal convolution cannot stream")
            left = self.context // 2
            return self.conv(F.pad(x, (left, self.context - left)))
        if state is None:
            return self.conv(F.pad(x, (self.context, 0)))
        x = torch.cat([state.take(self), x], dim=-1)
        state.put(self, x[..., x.shape[-1] - self.context:])
        return self.conv(x)


class StreamConvTranspose1d(Stateful):
    """``(batch, in_ch, T) -> (batch, out_ch, T * stride)`` causal transposed convolution.

    Keeps the first ``T * stride`` outputs; the overlap tail ``(batch, out_ch,
    kernel - stride)`` is the streaming state (see the module diagram).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int | None = None,
                 bias: bool = True, weight_norm: bool = False):
        super().__init__()
        kernel_size = 2 * stride if kernel_size is None else kernel_size
        if kernel_size < stride:
            raise ValueError(f"kernel_size={kernel_size} must be >= stride={stride}")
        self.conv = maybe_weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride,
                                                         bias=bias), weight_norm)
        self.out_channels = out_channels
        self.stride = stride
        self.tail = kernel_size - stride

    @property
    def has_state(self) -> bool:
        return self.tail > 0

    def state_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.out_channels, self.tail)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        y = F.conv_transpose1d(x, self.conv.weight, None, stride=self.stride)
        n = x.shape[-1] * self.stride
        if self.tail > 0:
            if state is not None:
                prev = state.take(self)
                y = torch.cat([y[..., :self.tail] + prev, y[..., self.tail:]], dim=-1)
                state.put(self, y[..., n:])
            y = y[..., :n]
        if self.conv.bias is not None:
            y = y + self.conv.bias[None, :, None]
        return y


def depthwise_conv(channels: int, kernel_size: int, dilation: int = 1, causal: bool = True,
                   weight_norm: bool = False) -> StreamConv1d:
    """Causal depthwise convolution (one filter per channel)."""
    return StreamConv1d(channels, channels, kernel_size, dilation=dilation, groups=channels,
                        causal=causal, weight_norm=weight_norm)


class StreamingModule(nn.Module):
    """Export wrapper: ``(x, *state_in) -> (*outputs, *state_out)``.

    ``net.forward(x, state)`` must accept a :class:`StreamState` and return a
    tensor or a tuple of tensors.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def layers(self) -> list[Stateful]:
        return stateful_layers(self.net)

    def forward(self, x: torch.Tensor, *states: torch.Tensor):
        st = StreamState(self.layers(), states)
        out = self.net(x, st)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return (*out, *st.result())


def run_chunks(net: nn.Module, x: torch.Tensor, sizes: Iterable[int]) -> list:
    """Stream ``x (batch, channels, T)`` through ``net`` in chunks of ``sizes`` along the last axis.

    Returns the list of per-chunk outputs (each a tensor or tuple). Test helper
    and reference for the engine's streaming loop.
    """
    layers = stateful_layers(net)
    state = initial_state(net, x.shape[0], x.device)
    outs, start = [], 0
    for size in sizes:
        chunk = x[..., start:start + size]
        if chunk.shape[-1] == 0:
            break
        st = StreamState(layers, state)
        outs.append(net(chunk, st))
        state = st.result()
        start += size
    if start < x.shape[-1]:
        raise ValueError(f"chunk sizes cover {start} of {x.shape[-1]} steps")
    return outs
