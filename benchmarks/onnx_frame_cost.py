"""What one streaming ONNX call costs at one frame a step, and why (prints figures; not a test).

    .venv/bin/python benchmarks/onnx_frame_cost.py [--sizes 192x4,96x3,64x2,32x2]

The chain target (``chain_stream_rtf`` >= 100) leaves 0.23 ms a 23 ms frame for everything, and
the chain spends about 0.1-0.2 ms of it outside the vocoder. Would a smaller frame-rate neural
vocoder fit in the rest? Two measurements, onnxruntime on 1 intra-op + 1 inter-op thread:

1. The floor of a call: graphs of N chained elementwise nodes on a (1, 513) frame. The time of
   a run is a fixed cost plus a cost per node, whatever the node computes on so few values.
2. The amplitude-phase generator (``training.nn.ap``) at the shipped size and smaller ones, with
   random weights (timing only): exported as the trainer exports it, one-frame calls.

On a 2-core virtual machine a run costs about 9 us plus 0.4-1 us a node. The AP generator's
graph has 170-220 nodes (21 a ConvNeXt block; its heads, phase integrator and locking about
110), so it costs 0.25-0.35 ms a call even at a tenth to a third of the shipped parameters:
the node count, not the weights, sets its cost. A vocoder for 100x needs a graph of a few dozen
nodes, or several frames a call (more latency).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def _session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _time_us(session: ort.InferenceSession, feeds: dict, calls: int = 3000) -> float:
    for _ in range(100):
        session.run(None, feeds)
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feeds)
    return (time.perf_counter() - start) / calls * 1e6


def _chain_graph(nodes: int, op: str, width: int = 513) -> bytes:
    """``nodes`` chained ``op`` nodes (alternating with Neg so no optimiser pass can merge them)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])
    graph_nodes, prev = [], "x"
    for i in range(nodes):
        out = "y" if i == nodes - 1 else f"t{i}"
        graph_nodes.append(helper.make_node(op if i % 2 == 0 else "Neg", [prev], [out]))
        prev = out
    graph = helper.make_graph(graph_nodes, "chain", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def call_floor() -> None:
    feeds = {"x": np.zeros((1, 513), np.float32)}
    for op in ("Relu", "Sin"):
        times = {n: _time_us(_session(_chain_graph(n, op)), feeds) for n in (1, 50, 200)}
        per_node = (times[200] - times[1]) / 199
        print(f"{op}/Neg chains: " + ", ".join(f"{n} nodes {t:.1f} us" for n, t in times.items())
              + f"; {per_node:.2f} us a node")


def ap_sizes(sizes: list[tuple[int, int]]) -> None:
    import torch

    from melsynth.training.nn.ap import APConfig
    from melsynth.training.vocoder.config import VocoderConfig
    from melsynth.training.vocoder.export import export_graphs
    from melsynth.training.vocoder.train import build_generator

    torch.manual_seed(0)
    for dim, layers in sizes:
        config = VocoderConfig(arch="ap", ap=APConfig(dim=dim, layers=layers))
        generator = build_generator(config)
        params = sum(p.numel() for p in generator.parameters())
        with tempfile.TemporaryDirectory() as tmp:
            path = export_graphs(config, generator, Path(tmp), "probe")["stream_path"]
            session = _session(str(path))
            size_mb = path.stat().st_size / 1e6
            nodes = sum(node.op_type != "Constant" for node in onnx.load(str(path)).graph.node)
        feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
                 for i in session.get_inputs()}
        feeds["mel"][:] = -3.0
        print(f"AP dim {dim} layers {layers}: {params / 1e3:.0f}k parameters, {size_mb:.2f} MB, "
              f"{nodes} graph nodes (not constants), one-frame call {_time_us(session, feeds, 1000):.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="192x4,96x3,64x2,32x2", help="AP generator DIMxLAYERS list ('' skips)")
    args = parser.parse_args()
    call_floor()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    if sizes:
        ap_sizes(sizes)


if __name__ == "__main__":
    main()
