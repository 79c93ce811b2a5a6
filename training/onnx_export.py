"""ONNX export shared by every network: weight norm off, one file, parity checked.

``export_onnx`` writes a graph atomically and returns the max abs error between
torch and onnxruntime on the example inputs, which the caller records in
``bundle.json``.
"""
from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from melsynth.engine.atomic import default_file_mode


def remove_weight_norm(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``module`` with every weight-norm parametrisation baked into plain weights."""
    module = copy.deepcopy(module)
    for m in module.modules():
        parametrizations = getattr(m, "parametrizations", None)
        if parametrizations is not None:
            # deepcopy shares the dynamically made Parametrized<Layer> class with the original, and
            # removal deletes the property from that class (breaking the original): copy the class first.
            cls = type(m)
            m.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(parametrizations.keys()):
                torch.nn.utils.parametrize.remove_parametrizations(m, name, leave_parametrized=True)
        if hasattr(m, "weight_g") and hasattr(m, "weight_v"):  # legacy torch.nn.utils.weight_norm
            torch.nn.utils.remove_weight_norm(m)
    return module


def export_onnx(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: str | os.PathLike,
                input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: dict[str, dict[int, str]] | None = None, opset: int = 18) -> float:
    """Export ``module`` to one ONNX file at ``path``; returns max |torch - onnxruntime|.

    Weight norm is removed first; the file appears only when complete (temp + rename).
    """
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = remove_weight_norm(module).eval()
    example_inputs = tuple(example_inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(module, example_inputs, tmp, input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=dynamic_axes,
                              opset_version=opset, dynamo=False)
        sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(input_names, example_inputs)}
        onnx_out = sess.run(list(output_names), feeds)
        with torch.no_grad():
            torch_out = module(*example_inputs)
        if isinstance(torch_out, torch.Tensor):
            torch_out = (torch_out,)
        err = max(float(np.max(np.abs(a - b.detach().cpu().numpy()))) if a.size else 0.0
                  for a, b in zip(onnx_out, torch_out))
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return err
