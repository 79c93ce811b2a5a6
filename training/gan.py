"""One GAN trainer for every melsynth network (the vocoder and the prior).

A model family plugs in by subclassing :class:`GANTask`; the trainer owns
everything else: optimisers, the reconstruction warm-up, the adversarial
phase, DDP, AMP, time budgets, atomic resumable checkpoints, TensorBoard,
the progress bar, the best checkpoint and the learning-curve CSV.

API
---
::

    from melsynth.training.gan import GANTask, LossOutput, Validation, TrainConfig, RunLimits, train

    class MyTask(GANTask):
        name = "vocoder_ap"                       # recorded in config.json / checkpoints
        best_metric = "mrstft_ratio"              # key of Validation.metrics; lower is better

        def config_dict(self) -> dict: ...        # the task's frozen dataclass as a dict (saved)
        def build_generator(self) -> nn.Module: ...
        def build_discriminator(self) -> nn.Module | None: ...   # None: reconstruction only
        def batches(self, rank, world_size, seed, batch_size) -> Iterator[Any]:
            ...                                   # endless iterator of CPU tensors (any nesting)
        def generator_loss(self, generator, discriminator, batch, adversarial) -> LossOutput:
            ...                                   # adversarial False during the warm-up
        def discriminator_loss(self, discriminator, batch, fake) -> LossOutput: ...
        def validate(self, generator, device) -> Validation: ...     # rank 0 only, no_grad

    result = train(MyTask(...), TrainConfig(batch_size=16), run_dir="runs/x",
                   limits=RunLimits(max_steps=10_000, minutes=30, device="cpu", resume=False))

Contract of the callbacks
~~~~~~~~~~~~~~~~~~~~~~~~~
- ``generator_loss`` gets the (possibly DDP-wrapped) generator and the *bare*
  discriminator (or ``None`` during the warm-up / without one) whose
  parameters are frozen for this call; it calls the generator exactly once and
  returns ``LossOutput(loss, logs, fake)`` where ``fake`` is whatever the
  discriminator step needs, already ``detach()``-ed.
- ``discriminator_loss`` gets the (possibly DDP-wrapped) discriminator and must
  call it exactly once per step (concatenate real and fake along the batch:
  DDP reduces gradients once per forward/backward pair).
- Under AMP (``TrainConfig.amp`` on CUDA) both callbacks run inside a bf16
  autocast: cast network outputs to ``float()`` before STFTs and losses.
- ``logs`` are plain floats; every key is averaged over ``log_every`` steps and
  written to TensorBoard as ``train/<key>`` and shown in the progress bar.
- ``Validation.metrics`` go to TensorBoard (``val/<key>``) and to the
  learning-curve CSV; ``audio`` clips (float arrays in [-1, 1]) and ``images``
  (``(H, W, 3)`` uint8) go to TensorBoard only.

Run folder
~~~~~~~~~~
::

    run_dir/
      config.json            {"task_name", "task": task.config_dict(), "trainer": TrainConfig}
      checkpoint.pt          latest full state (G, D, optimisers, step, clocks, RNG), atomic
      best_generator.pt      {"step", "metric", "value", "generator": state_dict, "task"}
      learning_curve.csv     step, wall_hours, cpu_hours, device_hours, <validation metrics>
      tb/                    TensorBoard event files

A run folder that has a checkpoint refuses a fresh start: pass ``resume=True``
(the saved config is then authoritative; :func:`load_run_config` reads it).
Checkpoints are written every ``checkpoint_minutes``, at the end, on Ctrl-C
(first Ctrl-C / SIGTERM stops gracefully at the next step boundary, in step on
every rank; a second Ctrl-C aborts after saving on rank 0).

Distributed: launched under ``torchrun`` (``WORLD_SIZE > 1``) the trainer
initialises a process group (gloo on CPU, nccl on CUDA), wraps G and D in
``DistributedDataParallel``, gives each rank its own data stream
(``batches(rank, world_size, ...)``), and lets rank 0 alone validate, log and
write files. ``batch_size`` is per process.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from melsynth.engine.atomic import atomic_write, atomic_write_json

CHECKPOINT = "checkpoint.pt"
BEST = "best_generator.pt"
CONFIG = "config.json"
CURVE = "learning_curve.csv"


class TrainError(RuntimeError):
    """A run that cannot start or continue (message names the file or value)."""


# --------------------------------------------------------------------------- public types
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings, frozen and saved with the run."""

    batch_size: int = 16                 # per process
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    lr_half_life_steps: int = 0          # exponential decay of both learning rates; 0 = constant
    lr_decay_from_step: int = 0          # the decay starts here (a branch carries the old run's step on)
    warmup_steps: int = 2000             # reconstruction-only steps before the discriminator joins
    grad_clip: float = 0.0               # max grad norm; 0 = off
    log_every: int = 20                  # steps between TensorBoard scalars
    validate_minutes: float = 10.0       # wall minutes between validations
    validate_steps: int = 0              # also validate every N steps (0 = time only)
    checkpoint_minutes: float = 5.0
    seed: int = 0
    amp: bool = False                    # bf16 autocast on CUDA

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise TrainError(f"batch_size={self.batch_size} must be >= 1")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise TrainError(f"learning rates must be positive (lr_g={self.lr_g}, lr_d={self.lr_d})")
        if self.warmup_steps < 0 or self.log_every < 1:
            raise TrainError("warmup_steps must be >= 0 and log_every >= 1")
        if self.lr_half_life_steps < 0 or self.lr_decay_from_step < 0:
            raise TrainError(f"lr_half_life_steps={self.lr_half_life_steps} and lr_decay_from_step="
                             f"{self.lr_decay_from_step} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)


@dataclass(frozen=True)
class RunLimits:
    """Per-invocation settings (not part of the frozen config)."""

    max_steps: int | None = None         # total steps of the run (resume continues up to it)
    minutes: float | None = None         # wall-clock budget of this invocation
    device: str = "cpu"                  # "cpu" | "cuda"
    resume: bool = False
    progress: bool = True                # tqdm bar on rank 0
    branch: str | None = None            # a run folder whose whole state a new run continues (``Trainer``)


@dataclass
class LossOutput:
    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    fake: Any = None


@dataclass
class Validation:
    metrics: dict[str, float]
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    sample_rate: int = 11025


@dataclass
class TrainResult:
    step: int
    stopped_by: str                      # "max_steps" | "minutes" | "interrupt"
    best_value: float | None
    last_metrics: dict[str, float]


class GANTask:
    """A model family: networks, data and losses. See the module docstring."""

    name: str = "gan"
    best_metric: str = "loss"
    # Files of a run folder that a branch copies from the run it continues (besides the curve).
    branch_files: tuple[str, ...] = ()

    def after_branch(self, generator: nn.Module, discriminator: nn.Module | None) -> None:
        """Called once a branch has loaded the old run's state: fix up what must follow this run's data."""

    def keep_built_on_branch(self, key: str) -> bool:
        """True: a branch keeps this generator tensor as ``build_generator`` made it, not the old run's
        (e.g. a frozen part the new configuration takes from elsewhere)."""
        return False

    def config_dict(self) -> dict[str, Any]:
        return {}

    def build_generator(self) -> nn.Module:
        raise NotImplementedError

    def build_discriminator(self) -> nn.Module | None:
        return None

    def batches(self, rank: int, world_size: int, seed: int, batch_size: int) -> Iterator[Any]:
        raise NotImplementedError

    def generator_loss(self, generator: nn.Module, discriminator: nn.Module | None, batch: Any,
                       adversarial: bool) -> LossOutput:
        raise NotImplementedError

    def discriminator_loss(self, discriminator: nn.Module, batch: Any, fake: Any) -> LossOutput:
        raise NotImplementedError

    def validate(self, generator: nn.Module, device: torch.device) -> Validation:
        return Validation(metrics={})


# --------------------------------------------------------------------------- helpers
def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a run: ``{"task_name", "task", "trainer"}``."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise TrainError(f"{path}: missing (not a training run folder?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainError(f"{path}: invalid JSON: {exc}") from exc


def run_checkpoint(path: str | os.PathLike) -> Path | None:
    """The checkpoint a run stands for: ``path`` itself if a file; for a run folder its
    ``best_generator.pt``, else its ``checkpoint.pt``; ``None`` if it has neither."""
    path = Path(path)
    if not path.is_dir():
        return path
    return next((p for p in (path / BEST, path / CHECKPOINT) if p.is_file()), None)


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: checkpoint missing")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for a damaged file
        raise TrainError(f"{path}: unreadable checkpoint: {exc}") from exc


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))


def with_generator_init(task: "GANTask", path: str | os.PathLike) -> "GANTask":
    """Wrap ``task.build_generator`` so a new run's generator starts from the weights in ``path``
    (a checkpoint or best_generator.pt); the critic and optimisers start fresh."""
    path = Path(path)
    state = load_checkpoint(path).get("generator")
    if state is None:
        raise TrainError(f"{path}: no 'generator' weights inside")
    build = task.build_generator

    def build_from_weights():
        g = build()
        try:
            g.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        except RuntimeError as exc:
            raise TrainError(f"{path}: weights do not fit the configured generator: {exc}") from exc
        return g

    task.build_generator = build_from_weights
    return task


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where the file system allows (train_codes.npz is large), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def unwrap(module: nn.Module | None) -> nn.Module | None:
    """The bare module inside DDP / AMP wrappers."""
    while module is not None and hasattr(module, "module") and isinstance(module.module, nn.Module) \
            and isinstance(module, (nn.parallel.DistributedDataParallel, _Autocast)):
        module = module.module
    return module


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _to_float(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_float(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_float(v) for k, v in obj.items()}
    return obj


class _Autocast(nn.Module):
    """Runs ``module`` under bf16 autocast and returns float32 outputs."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            out = self.module(*args, **kwargs)
        return _to_float(out)


class _Clock:
    """Wall and process-CPU seconds, accumulated across resumes."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0):
        self.wall0, self.cpu0 = wall, cpu
        self.t0, self.c0 = time.monotonic(), time.process_time()

    @property
    def wall(self) -> float:
        return self.wall0 + time.monotonic() - self.t0

    @property
    def cpu(self) -> float:
        return self.cpu0 + time.process_time() - self.c0

    def session_wall(self) -> float:
        return time.monotonic() - self.t0


class _StopRequest:
    """First SIGINT/SIGTERM asks for a graceful stop; a second SIGINT raises."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


# --------------------------------------------------------------------------- the trainer
class _Trainer:
    def __init__(self, task: GANTask, config: TrainConfig, run_dir: Path, limits: RunLimits):
        self.task, self.config, self.run_dir, self.limits = task, config, run_dir, limits
        self.rank, self.world, self.local_rank = _dist_env()
        self.distributed = self.world > 1
        self.is_main = self.rank == 0
        if limits.device not in ("cpu", "cuda"):
            raise TrainError(f"--device must be cpu or cuda, got {limits.device!r}")
        if limits.device == "cuda":
            if not torch.cuda.is_available():
                raise TrainError("--device cuda: no CUDA device visible to torch")
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        else:
            self.device = torch.device("cpu")
        self.amp = bool(config.amp and self.device.type == "cuda")

    # ----------------------------------------------------------------- setup
    def _init_distributed(self) -> None:
        if not self.distributed or torch.distributed.is_initialized():
            return
        import datetime

        backend = "nccl" if self.device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(hours=2))

    def _prepare_run_dir(self) -> dict[str, Any] | None:
        """Write/verify config.json; returns the checkpoint to resume or branch from (or None)."""
        ckpt_path = self.run_dir / CHECKPOINT
        if self.limits.branch is not None and self.limits.resume:
            raise TrainError("--branch starts a new run from another; it cannot be combined with --resume")
        saved = {"task_name": self.task.name, "task": self.task.config_dict(), "trainer": self.config.to_dict()}
        saved = json.loads(json.dumps(saved))  # tuples -> lists, as on disk
        if self.limits.resume:
            if not ckpt_path.is_file():
                raise TrainError(f"{ckpt_path}: nothing to resume (no checkpoint in the run folder)")
            on_disk = load_run_config(self.run_dir)
            if on_disk != saved:
                raise TrainError(f"{self.run_dir / CONFIG}: the run was started with another configuration; "
                                 "resume with the saved one (load_run_config) or use a new --run folder")
            return load_checkpoint(ckpt_path)
        if ckpt_path.is_file():
            raise TrainError(f"{ckpt_path}: the run folder already has a checkpoint; pass --resume "
                             "to continue it or choose a new --run folder")
        branch = None
        if self.limits.branch is not None:
            old = Path(self.limits.branch)
            if not (old / CHECKPOINT).is_file():
                raise TrainError(f"{old / CHECKPOINT}: nothing to branch from (no checkpoint in that run folder)")
            branch = load_checkpoint(old / CHECKPOINT)
            if branch.get("task_name") != self.task.name:
                raise TrainError(f"{old}: a {branch.get('task_name')!r} run; this is a {self.task.name!r} one")
            branch["branched_from"] = str(old)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / CONFIG, saved)
            if branch is not None:
                for name in (CURVE, *self.task.branch_files):
                    if (old / name).is_file() and not (self.run_dir / name).exists():
                        _link_or_copy(old / name, self.run_dir / name)
        return branch

    def _lr_lambda(self):
        half = self.config.lr_half_life_steps
        if half <= 0:
            return lambda step: 1.0
        start = self.config.lr_decay_from_step
        return lambda step: 0.5 ** (max(0, step - start) / half)

    def _build(self, state: dict[str, Any] | None) -> None:
        cfg = self.config
        self.G = self.task.build_generator().to(self.device)
        D = self.task.build_discriminator()
        self.D = D.to(self.device) if D is not None else None
        self.opt_g = torch.optim.AdamW(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas,
                                       weight_decay=cfg.weight_decay)
        self.opt_d = (torch.optim.AdamW(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas,
                                        weight_decay=cfg.weight_decay) if self.D is not None else None)
        self.step = 0
        self.best_value: float | None = None
        wall = cpu = 0.0
        if state is not None and "branched_from" in state:
            self._load_branch(state)
        elif state is not None:
            self.G.load_state_dict(state["generator"])
            self.opt_g.load_state_dict(state["opt_g"])
            if self.D is not None:
                if state.get("discriminator") is None:
                    raise TrainError(f"{self.run_dir / CHECKPOINT}: has no discriminator state")
                self.D.load_state_dict(state["discriminator"])
                self.opt_d.load_state_dict(state["opt_d"])
            self.step = int(state["step"])
            self.best_value = state.get("best_value")
            wall, cpu = float(state.get("wall_seconds", 0.0)), float(state.get("cpu_seconds", 0.0))
            rng = state.get("rng")
            if rng is not None and not self.distributed:
                torch.set_rng_state(rng["torch"])
                np.random.set_state(rng["numpy"])
        if state is not None and "branched_from" in state:
            # The old best was scored under another configuration (another decoder, say): the
            # branch's best is its own, so its best checkpoint is always one of its own states.
            self.step, self.best_value = int(state["step"]), None
            wall, cpu = float(state.get("wall_seconds", 0.0)), float(state.get("cpu_seconds", 0.0))
        self.clock = _Clock(wall, cpu)
        self._set_lr()
        # Wrappers used for the training forward passes; self.G / self.D stay bare for saving.
        g_train: nn.Module = _Autocast(self.G) if self.amp else self.G
        d_train: nn.Module | None = (_Autocast(self.D) if self.amp else self.D) if self.D is not None else None
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            g_train = nn.parallel.DistributedDataParallel(g_train, device_ids=ids)
            if d_train is not None:
                d_train = nn.parallel.DistributedDataParallel(d_train, device_ids=ids)
        self.G_train, self.D_train = g_train, d_train
        self.D_bare = (_Autocast(self.D) if self.amp else self.D) if self.D is not None else None

    def _load_branch(self, state: dict[str, Any]) -> None:
        """Continue another run's state under this run's configuration.

        Generator tensors the old run has (and the task does not keep as built) are loaded;
        tensors new to this configuration keep their initialisation. The critic must be the
        same shape. Optimiser moments follow their parameters by name, so new parameters
        start with none. Step and clocks carry on, so the learning curve continues; the best
        value starts afresh.
        """
        old, built = state["generator"], self.G.state_dict()
        merged = {k: (v if self.task.keep_built_on_branch(k) or k not in old else old[k].to(v.dtype))
                  for k, v in built.items()}
        dropped = sorted(k for k in old if k not in built)
        if dropped:
            raise TrainError(f"{state['branched_from']}: its generator has tensors this configuration lacks: "
                             f"{dropped[:3]}")
        try:
            self.G.load_state_dict(merged)
        except RuntimeError as exc:
            raise TrainError(f"{state['branched_from']}: generator tensors do not fit: {exc}") from exc
        if self.D is not None:
            if state.get("discriminator") is None:
                raise TrainError(f"{state['branched_from']}: has no discriminator state to branch from")
            try:
                self.D.load_state_dict(state["discriminator"])
            except RuntimeError as exc:
                raise TrainError(f"{state['branched_from']}: the critic differs in shape: {exc}") from exc
            self.opt_d.load_state_dict(state["opt_d"])
        # Checkpoints name their parameters; in older ones the order is this generator's without the new ones.
        old_names = state.get("generator_parameter_names") or [n for n, _ in self.G.named_parameters() if n in old]
        if len(old_names) != len(state["opt_g"]["param_groups"][0]["params"]):
            raise TrainError(f"{state['branched_from']}: its optimiser does not match its generator's parameters")
        moments = {old_names[i]: m for i, m in state["opt_g"]["state"].items()}
        names = [n for n, _ in self.G.named_parameters()]
        opt = self.opt_g.state_dict()
        opt["state"] = {i: moments[n] for i, n in enumerate(names)
                        if n in moments and not self.task.keep_built_on_branch(n)}
        self.opt_g.load_state_dict(opt)
        self.task.after_branch(self.G, self.D)

    def _set_lr(self) -> None:
        factor = self._lr_lambda()(self.step)
        for opt, base in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = base * factor

    # ----------------------------------------------------------------- files
    def _save_checkpoint(self) -> None:
        if not self.is_main:
            return
        state = {
            "task_name": self.task.name,
            "task": self.task.config_dict(),
            "trainer": self.config.to_dict(),
            "step": self.step,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict() if self.D is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "generator_parameter_names": [n for n, _ in self.G.named_parameters()],
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "best_value": self.best_value,
            "wall_seconds": self.clock.wall,
            "cpu_seconds": self.clock.cpu * self.world,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
        }
        save_torch_atomic(self.run_dir / CHECKPOINT, state)

    def _append_curve(self, metrics: dict[str, float], cpu_seconds: float) -> None:
        path = self.run_dir / CURVE
        device_hours = self.clock.wall / 3600 * self.world if self.device.type == "cuda" else 0.0
        row = {"step": self.step, "wall_hours": round(self.clock.wall / 3600, 5),
               "cpu_hours": round(cpu_seconds / 3600, 5), "device_hours": round(device_hours, 5)}
        row.update({k: round(float(v), 6) for k, v in sorted(metrics.items())})
        rows = []
        if path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        rows.append({k: str(v) for k, v in row.items()})
        columns = list(row)
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)

        def write(f):
            w = csv.DictWriter(f, fieldnames=columns, restval="")
            w.writeheader()
            w.writerows(rows)

        atomic_write(path, write, mode="w")

    # ----------------------------------------------------------------- validation
    def _validate(self, writer) -> dict[str, float]:
        cpu = torch.tensor([self.clock.cpu], dtype=torch.float64)
        if self.distributed:  # every rank reaches this on the same step
            cpu = cpu.to(self.device)
            torch.distributed.all_reduce(cpu)
        cpu_seconds = float(cpu.item())
        metrics: dict[str, float] = {}
        if self.is_main:
            self.G.eval()
            with torch.no_grad():
                result = self.task.validate(self.G, self.device)
            self.G.train()
            metrics = dict(result.metrics)
            if not self.limits.progress:
                print(f"validation at step {self.step}: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                      file=sys.stderr, flush=True)
            for k, v in metrics.items():
                writer.add_scalar(f"val/{k}", v, self.step)
            for k, clip in result.audio.items():
                clip = np.clip(np.asarray(clip, dtype=np.float32), -1.0, 1.0)
                writer.add_audio(f"audio/{k}", torch.from_numpy(clip)[None], self.step,
                                 sample_rate=result.sample_rate)
            for k, img in result.images.items():
                writer.add_image(f"spectrogram/{k}", np.asarray(img), self.step, dataformats="HWC")
            writer.flush()
            self._append_curve(metrics, cpu_seconds)
            value = metrics.get(self.task.best_metric)
            if value is not None and math.isfinite(value) and (self.best_value is None or value < self.best_value):
                self.best_value = float(value)
                save_torch_atomic(self.run_dir / BEST, {
                    "task_name": self.task.name, "task": self.task.config_dict(), "step": self.step,
                    "metric": self.task.best_metric, "value": self.best_value,
                    "generator": self.G.state_dict()})
        if self.distributed:
            torch.distributed.barrier()
        return metrics

    # ----------------------------------------------------------------- one step
    def _train_step(self, batch: Any) -> dict[str, float]:
        cfg = self.config
        adversarial = self.D is not None and self.step >= cfg.warmup_steps
        logs: dict[str, float] = {}
        # Generator: D frozen (its grads would be discarded anyway; this saves the work).
        d_for_g = self.D_bare if adversarial else None
        if self.D is not None:
            self.D.requires_grad_(False)
        out_g = self.task.generator_loss(self.G_train, d_for_g, batch, adversarial)
        self.opt_g.zero_grad(set_to_none=True)
        out_g.loss.backward()
        if cfg.grad_clip > 0:
            logs["grad_norm_g"] = float(torch.nn.utils.clip_grad_norm_(self.G.parameters(), cfg.grad_clip))
        self.opt_g.step()
        if self.D is not None:
            self.D.requires_grad_(True)
        logs["loss_g"] = float(out_g.loss.detach())
        logs.update(out_g.logs)
        if adversarial:
            out_d = self.task.discriminator_loss(self.D_train, batch, out_g.fake)
            self.opt_d.zero_grad(set_to_none=True)
            out_d.loss.backward()
            if cfg.grad_clip > 0:
                logs["grad_norm_d"] = float(torch.nn.utils.clip_grad_norm_(self.D.parameters(), cfg.grad_clip))
            self.opt_d.step()
            logs["loss_d"] = float(out_d.loss.detach())
            logs.update(out_d.logs)
        self.step += 1
        self._set_lr()
        return logs

    # ----------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        self._init_distributed()
        state = self._prepare_run_dir()
        if self.distributed:
            torch.distributed.barrier()
        _seed_everything(self.config.seed + 1000 * self.rank + (state["step"] if state else 0))
        self._build(state)
        del state
        writer = None
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tb"))
        data = self.task.batches(self.rank, self.world, self.config.seed + 7919 * self.step,
                                 self.config.batch_size)
        limits = self.limits
        bar = None
        if self.is_main and limits.progress:
            from tqdm import tqdm

            bar = tqdm(total=limits.max_steps, initial=self.step, desc=self.task.name, dynamic_ncols=True,
                       file=sys.stderr, mininterval=1.0)
        sums: dict[str, float] = {}
        count = 0
        last_ckpt = last_val = time.monotonic()
        last_print = 0.0
        last_metrics: dict[str, float] = {}
        stopped_by = "max_steps"
        self.G.train()
        if self.D is not None:
            self.D.train()
        with _StopRequest() as stop:
            try:
                while limits.max_steps is None or self.step < limits.max_steps:
                    batch = to_device(next(data), self.device)
                    logs = self._train_step(batch)
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    now = time.monotonic()
                    # Decisions that depend on clocks or signals are agreed by all ranks.
                    flags = torch.tensor([
                        float(stop.requested),
                        float(limits.minutes is not None and self.clock.session_wall() >= limits.minutes * 60),
                        float(now - last_val >= self.config.validate_minutes * 60
                              or (self.config.validate_steps > 0 and self.step % self.config.validate_steps == 0)),
                        float(now - last_ckpt >= self.config.checkpoint_minutes * 60),
                    ])
                    if self.distributed:
                        flags = flags.to(self.device)
                        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
                        flags = flags.cpu()
                    want_stop, out_of_time, want_val, want_ckpt = (bool(f) for f in flags.tolist())
                    if self.is_main and (count >= self.config.log_every or want_stop or out_of_time):
                        means = {k: v / count for k, v in sums.items()}
                        for k, v in means.items():
                            writer.add_scalar(f"train/{k}", v, self.step)
                        writer.add_scalar("train/lr_g", self.opt_g.param_groups[0]["lr"], self.step)
                        if bar is not None:
                            bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()
                                             if not k.startswith("grad_norm")}, refresh=False)
                        elif now - last_print >= 60.0:  # no bar (nohup logs): one line a minute
                            last_print = now
                            print(f"step {self.step} " + " ".join(f"{k}={v:.4g}" for k, v in means.items()),
                                  file=sys.stderr, flush=True)
                        sums, count = {}, 0
                    if bar is not None:
                        bar.update(1)
                    if want_val:
                        last_metrics = self._validate(writer) or last_metrics
                        last_val = time.monotonic()
                    if want_ckpt:
                        self._save_checkpoint()
                        last_ckpt = time.monotonic()
                    if want_stop:
                        stopped_by = "interrupt"
                        break
                    if out_of_time:
                        stopped_by = "minutes"
                        break
                if stopped_by != "interrupt":
                    last_metrics = self._validate(writer) or last_metrics
                self._save_checkpoint()
            except KeyboardInterrupt:
                stopped_by = "interrupt"
                self._save_checkpoint()
            finally:
                if bar is not None:
                    bar.close()
                if writer is not None:
                    writer.close()
        return TrainResult(step=self.step, stopped_by=stopped_by, best_value=self.best_value,
                           last_metrics=last_metrics)


def train(task: GANTask, config: TrainConfig, run_dir: str | os.PathLike, limits: RunLimits = RunLimits()
          ) -> TrainResult:
    """Train ``task`` into ``run_dir`` (see the module docstring). Returns where it stopped."""
    trainer = _Trainer(task, config, Path(run_dir), limits)
    try:
        return trainer.run()
    finally:
        if trainer.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@contextlib.contextmanager
def frozen(module: nn.Module | None):
    """Temporarily turn off ``requires_grad`` on ``module``'s parameters."""
    if module is None:
        yield
        return
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)
