"""Vocoder training: the ``GANTask`` for both generator families, data sources and validation.

Data: random crops of ``segment_frames`` frames, audio and mel aligned as in
``training.corpus.dataset`` (sample ``n`` of a crop lies under frame ``n // hop``),
scaled together by a random gain (mel shifted by ``log10(gain)``, floored as
the features are). Sources: :class:`CorpusSource` (a built corpus split) or
:class:`ClipSource` (audio arrays in memory: tests, synthetic data).

Per-step losses (``VocoderConfig.losses``), with ``S`` the target STFT of the
crop and ``y`` the generated waveform::

    all      mrstft (log10 |STFT| L1 at 512/1024/2048) + spectral convergence + mel L1 (on y)
    ap       + log-amplitude L1 + IF and GD anti-wrapping (amplitude-weighted) + consistency
             (STFT-domain terms skip ``edge_frames`` at each crop edge: the crop's STFT there
             sees reflect padding, the network sees the file's real context)
    adv      + adversarial (hinge | lsgan) + feature matching x10, after the warm-up

Validation (rank 0): ``val_clips`` fixed clips of ``val_seconds`` from the
validation split, vocoded offline; MR-STFT and log-mel L1 (``engine.offline.metrics``)
and their ratios to Griffin-Lim-64 on the same mel (cached in the run folder);
for ``ap`` also the ratio after ``val_gl_refine_iterations`` Griffin-Lim
iterations started from the network's phase. ``mrstft_ratio`` picks the best
checkpoint.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from melsynth.engine.dsp.features import MelSpec, log_mel as numpy_log_mel
from melsynth.training.features import TorchMel
from melsynth.training.gan import GANTask, LossOutput, TrainError, Validation
from melsynth.training.nn import losses as L
from melsynth.training.nn.ap import APGenerator
from melsynth.training.nn.discriminators import VocoderDiscriminator
from melsynth.training.nn.melgan import MelGANGenerator
from melsynth.training.vocoder.config import VocoderConfig


# --------------------------------------------------------------------------- data
class ClipSource:
    """Random aligned crops from audio arrays held in memory (mel computed with ``engine.dsp.features``)."""

    def __init__(self, clips: Sequence[np.ndarray], spec: MelSpec):
        self.spec = spec
        self.clips = [np.asarray(c, dtype=np.float32) for c in clips]
        self.mels = [numpy_log_mel(spec, c) for c in self.clips]
        if not self.clips:
            raise TrainError("ClipSource needs at least one clip")

    def crop(self, rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
        hop = self.spec.hop_length
        lengths = np.array([c.size // hop - frames for c in self.clips])
        ok = np.flatnonzero(lengths >= 0)
        if ok.size == 0:
            raise TrainError(f"no clip is at least {frames} frames ({frames * hop} samples) long")
        i = int(rng.choice(ok))
        start = int(rng.integers(0, lengths[i] + 1))
        return (self.clips[i][start * hop:(start + frames) * hop],
                self.mels[i][:, start:start + frames])


class CorpusSource:
    """Random aligned crops of a built corpus split via ``training.corpus.dataset.AudioMelDataset``."""

    def __init__(self, corpus_dir: str | os.PathLike, split: str, frames: int, spec: MelSpec, seed: int = 0):
        from melsynth.training.corpus.dataset import AudioMelDataset

        self.dataset = AudioMelDataset(corpus_dir, split, frames, spec, seed=seed, random_offset=True)
        self.epoch = 0

    def crop(self, rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(rng.integers(0, len(self.dataset)))
        return self.dataset[i]


def gain_augment(audio: np.ndarray, mel: np.ndarray, gain_db: float, spec: MelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Scale audio by ``gain_db`` and shift the log10 mel to match (floored at ``log_floor``)."""
    gain = 10.0 ** (gain_db / 20.0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak * gain > 0.99:   # never clip: the generator's tanh / the engine's limiter cap at 1
        gain = 0.99 / peak
    shifted = np.maximum(mel + np.log10(gain), spec.log_min).astype(np.float32)
    return (audio * gain).astype(np.float32), shifted


def batch_iterator(source, config: VocoderConfig, batch_size: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    frames, spec = config.segment_frames, config.mel
    while True:
        audios, mels = [], []
        for _ in range(batch_size):
            for _attempt in range(5):
                audio, mel = source.crop(rng, frames)
                if float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) >= config.min_rms:
                    break
            audio, mel = gain_augment(audio, mel, float(rng.uniform(*config.gain_db)), spec)
            audios.append(audio)
            mels.append(mel)
        yield {"audio": torch.from_numpy(np.stack(audios)), "mel": torch.from_numpy(np.stack(mels))}


class _BatchStream(torch.utils.data.IterableDataset):
    """``batch_iterator`` inside DataLoader workers, one seed per worker."""

    def __init__(self, source, config: VocoderConfig, batch_size: int, seed: int):
        super().__init__()
        self.source, self.config, self.batch_size, self.seed = source, config, batch_size, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        return batch_iterator(self.source, self.config, self.batch_size, self.seed * 101 + worker)


VAL_CLIPS_FILE = "val_clips.json"


def validation_clips(corpus_dir: str | os.PathLike, spec: MelSpec, count: int, seconds: float,
                     split: str = "validation", run_dir: str | os.PathLike | None = None
                     ) -> list[tuple[str, np.ndarray]]:
    """``count`` fixed clips of ``seconds`` spread over ``split``.

    With ``run_dir`` the choice is saved in ``run_dir/val_clips.json`` on first use
    and read back afterwards, so a growing corpus never changes a run's
    validation set (its learning curve stays comparable).
    """
    import soundfile as sf

    from melsynth.engine.atomic import atomic_write_json
    from melsynth.training.corpus.manifest import read_manifest

    corpus_dir = Path(corpus_dir)
    saved = Path(run_dir) / VAL_CLIPS_FILE if run_dir is not None else None
    if saved is not None and saved.is_file():
        out = []
        for item in json.loads(saved.read_text()):
            path = corpus_dir / item["path"]
            if not path.is_file():
                raise TrainError(f"{saved}: validation clip source {path} is missing from the corpus")
            audio, sr = sf.read(str(path), start=int(item["start"]), frames=int(item["samples"]),
                                dtype="float32", always_2d=False)
            if audio.ndim != 1:
                audio = audio.mean(axis=1)
            out.append((item["name"], audio.astype(np.float32)))
        return out
    entries = read_manifest(corpus_dir).split_files(split)
    if not entries:
        raise TrainError(f"{corpus_dir}: split {split!r} is empty; validation needs clips")
    entries = sorted(entries, key=lambda e: e.path)
    n = int(seconds * spec.sample_rate)
    out, chosen = [], []
    # One clip per file, spread over the split; with fewer files than clips, several positions per file.
    per_file = -(-count // len(entries))
    for k in range(count):
        e = entries[(k * max(1, len(entries) // count) + k // len(entries)) % len(entries)] \
            if len(entries) >= count else entries[k % len(entries)]
        position = (k // len(entries) + 1) / (per_file + 1) if len(entries) < count else 0.5
        path = corpus_dir / e.path
        audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
        if sr != spec.sample_rate:
            raise TrainError(f"{path}: {sr} Hz, expected {spec.sample_rate}")
        if audio.ndim != 1:
            audio = audio.mean(axis=1)
        start = int((audio.size - n) * position) if audio.size > n else 0
        out.append((f"{Path(e.path).stem}@{start}", audio[start:start + n].astype(np.float32)))
        chosen.append({"name": out[-1][0], "path": e.path, "start": start, "samples": int(out[-1][1].size)})
    if saved is not None:
        atomic_write_json(saved, chosen)
    return out


# --------------------------------------------------------------------------- generator helpers
def build_generator(config: VocoderConfig) -> nn.Module:
    if config.arch == "ap":
        return APGenerator(config.mel, config.ap)
    return MelGANGenerator(config.mel, config.melgan)


def generator_audio(generator: nn.Module, mel_module: TorchMel, log_mel: torch.Tensor, arch: str,
                    n_samples: int | None = None) -> torch.Tensor:
    """``(batch, n_mels, F) -> (batch, F * hop)`` audio from either family (offline, torch)."""
    spec = mel_module.spec
    n_samples = n_samples or log_mel.shape[-1] * spec.hop_length
    if arch == "melgan":
        return generator(log_mel)[..., :n_samples]
    real, imag = generator(log_mel)
    return istft(mel_module, torch.complex(real, imag), n_samples)


def istft(mel_module: TorchMel, frames: torch.Tensor, n_samples: int) -> torch.Tensor:
    s = mel_module.spec
    return torch.istft(frames, s.n_fft, s.hop_length, s.n_fft, window=mel_module.window, center=True,
                       length=n_samples)


def griffin_lim_refine(mel_module: TorchMel, frames: torch.Tensor, iterations: int, n_samples: int
                       ) -> torch.Tensor:
    """Keep ``|frames|``, refine the phase by ``iterations`` Griffin-Lim steps -> audio."""
    magnitude = frames.abs()
    for _ in range(iterations):
        again = mel_module.stft(istft(mel_module, frames, n_samples))[..., :frames.shape[-1]]
        frames = magnitude * torch.exp(1j * torch.angle(again))
    return istft(mel_module, frames, n_samples)


# --------------------------------------------------------------------------- the task
class VocoderTask(GANTask):
    best_metric = "mrstft_ratio"

    def __init__(self, config: VocoderConfig, source, val_clips: Sequence[tuple[str, np.ndarray]] = (),
                 reference_cache: str | os.PathLike | None = None, use_discriminator: bool = True,
                 loader_workers: int = 0):
        self.config = config
        self.name = f"vocoder_{config.arch}"
        self.source = source
        self.val_clips = list(val_clips)
        self.reference_cache = Path(reference_cache) if reference_cache else None
        self.use_discriminator = use_discriminator
        self.loader_workers = loader_workers
        self._mel: TorchMel | None = None
        self._stft_losses: L.STFTLosses | None = None
        self._references: list[dict[str, Any]] | None = None

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def build_generator(self) -> nn.Module:
        return build_generator(self.config)

    def build_discriminator(self) -> nn.Module | None:
        return VocoderDiscriminator(self.config.discriminator) if self.use_discriminator else None

    def batches(self, rank: int, world_size: int, seed: int, batch_size: int):
        seed = seed * 1009 + rank
        if self.loader_workers <= 0:
            return batch_iterator(self.source, self.config, batch_size, seed)
        loader = torch.utils.data.DataLoader(
            _BatchStream(self.source, self.config, batch_size, seed), batch_size=None,
            num_workers=self.loader_workers, pin_memory=torch.cuda.is_available(), prefetch_factor=4,
            persistent_workers=True)
        return iter(loader)

    # ----------------------------------------------------------- modules on the right device
    def _modules(self, device: torch.device) -> tuple[TorchMel, L.STFTLosses]:
        if self._mel is None or self._mel.window.device != device:
            self._mel = TorchMel(self.config.mel).to(device)
            self._stft_losses = L.STFTLosses(self._mel).to(device)
        return self._mel, self._stft_losses

    # ----------------------------------------------------------- losses
    def reconstruction(self, generator: nn.Module, batch: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Reconstruction loss, its logs and the generated audio ``(batch, samples)``."""
        cfg, w = self.config, self.config.losses
        audio, log_mel = batch["audio"], batch["mel"]
        mel, stft_losses = self._modules(audio.device)
        hop = cfg.mel.hop_length
        n = audio.shape[-1]
        terms: dict[str, torch.Tensor] = {}
        if cfg.arch == "ap":
            out = generator(log_mel)
            real, imag = (o.float() for o in out)
            frames = torch.complex(real, imag)
            fake = istft(mel, frames, n)
            target = mel.stft(audio)[..., :frames.shape[-1]]
            e = cfg.edge_frames
            t_sl = slice(e, frames.shape[-1] - e)
            tgt, prd = target[..., t_sl], frames[..., t_sl]
            true_amp = tgt.abs()
            pred_amp = prd.abs()
            terms["log_amplitude"] = L.log_amplitude_l1(torch.log(pred_amp.clamp(min=1e-5)), true_amp)
            weight = L.amplitude_weights(true_amp, w.phase_weight_power)
            phase = L.phase_losses(torch.angle(prd), torch.angle(tgt), weight)
            terms["instantaneous_frequency"] = phase["if"]
            terms["group_delay"] = phase["gd"]
            terms["consistency"] = L.consistency_l1(mel, frames, n)
        else:
            fake = generator(log_mel).float()[..., :n]
        # Waveform terms skip the last two hops: the crop's final frames are cut short.
        keep = n - 2 * hop
        mr = stft_losses.multi_resolution(fake[..., :keep], audio[..., :keep])
        terms["mrstft"] = mr["mrstft"]
        terms["spectral_convergence"] = mr["spectral_convergence"]
        terms["mel"] = stft_losses.mel_l1(fake[..., :keep], log_mel[..., :keep // hop])
        total = sum(getattr(w, k) * v for k, v in terms.items())
        logs = {k: float(v.detach()) for k, v in terms.items()}
        return total, logs, fake

    def generator_loss(self, generator, discriminator, batch, adversarial: bool) -> LossOutput:
        total, logs, fake = self.reconstruction(generator, batch)
        if adversarial and discriminator is not None:
            w = self.config.losses
            real = batch["audio"]
            outputs = discriminator(torch.cat([real, fake], dim=0))
            _, fake_logits, real_feats, fake_feats = L.split_batch(outputs, real.shape[0])
            adv = L.generator_adversarial_loss(fake_logits, self.config.gan_loss)
            fm = L.feature_matching_loss(real_feats, fake_feats)
            total = total + w.adversarial * adv + w.feature_matching * fm
            logs["adv_g"] = float(adv.detach())
            logs["feature_matching"] = float(fm.detach())
        return LossOutput(total, logs, fake.detach())

    def discriminator_loss(self, discriminator, batch, fake) -> LossOutput:
        real = batch["audio"]
        outputs = discriminator(torch.cat([real, fake], dim=0))
        real_logits, fake_logits, _, _ = L.split_batch(outputs, real.shape[0])
        loss = L.discriminator_loss(real_logits, fake_logits, self.config.gan_loss)
        return LossOutput(loss, {"adv_d": float(loss.detach())})

    # ----------------------------------------------------------- validation
    def references(self) -> list[dict[str, Any]]:
        """Per clip: mel, Griffin-Lim-64 audio and its metrics (cached in the run folder)."""
        if self._references is not None:
            return self._references
        from melsynth.engine.offline import metrics as M

        spec = self.config.mel
        refs, cached = [], {}
        path = self.reference_cache
        if path is not None and path.is_file():
            with np.load(path) as data:
                cached = {k: data[k] for k in data.files}
        changed = False
        for name, audio in self.val_clips:
            lm = numpy_log_mel(spec, audio)
            key = f"gl_{name}"
            gl = cached.get(key)
            if gl is None or gl.shape != audio.shape:
                gl = M.griffin_lim(spec, lm, audio.size)
                cached[key] = gl
                changed = True
            refs.append({"name": name, "audio": audio, "mel": lm, "gl": gl,
                         "gl_mrstft": M.mr_stft_l1(audio, gl), "gl_mel": M.log_mel_l1(spec, audio, gl)})
        if changed and path is not None:
            from melsynth.engine.atomic import atomic_write

            atomic_write(path, lambda f: np.savez(f, **cached))
        self._references = refs
        return refs

    @torch.no_grad()
    def vocode(self, generator: nn.Module, log_mel: np.ndarray, device: torch.device, n_samples: int,
               gl_iterations: int = 0) -> np.ndarray:
        """Offline torch vocoding of one ``(n_mels, F)`` mel -> ``(n_samples,)`` float32."""
        mel, _ = self._modules(device)
        x = torch.from_numpy(np.ascontiguousarray(log_mel))[None].to(device)
        if self.config.arch == "ap" and gl_iterations > 0:
            real, imag = generator(x)
            frames = torch.complex(real.float(), imag.float())
            y = griffin_lim_refine(mel, frames, gl_iterations, x.shape[-1] * self.config.mel.hop_length)
        else:
            y = generator_audio(generator, mel, x, self.config.arch)
        y = y[0, :n_samples].float().cpu().numpy()
        if y.size < n_samples:
            y = np.concatenate([y, np.zeros(n_samples - y.size, np.float32)])
        return np.clip(y, -1.0, 1.0)

    def validate(self, generator: nn.Module, device: torch.device) -> Validation:
        if not self.val_clips:
            return Validation(metrics={})
        from melsynth.engine.offline import metrics as M

        spec = self.config.mel
        refs = self.references()
        rows: dict[str, list[float]] = {}
        audio_out: dict[str, np.ndarray] = {}
        images: dict[str, np.ndarray] = {}
        for i, ref in enumerate(refs):
            y = self.vocode(generator, ref["mel"], device, ref["audio"].size)
            mr = M.mr_stft_l1(ref["audio"], y)
            ml = M.log_mel_l1(spec, ref["audio"], y)
            rows.setdefault("mrstft", []).append(mr)
            rows.setdefault("mel_l1", []).append(ml)
            rows.setdefault("mrstft_ratio", []).append(mr / max(ref["gl_mrstft"], 1e-12))
            rows.setdefault("mel_ratio", []).append(ml / max(ref["gl_mel"], 1e-12))
            if self.config.arch == "ap" and self.config.val_gl_refine_iterations > 0:
                k = self.config.val_gl_refine_iterations
                yr = self.vocode(generator, ref["mel"], device, ref["audio"].size, gl_iterations=k)
                rows.setdefault(f"mrstft_ratio_gl{k}", []).append(M.mr_stft_l1(ref["audio"], yr)
                                                                  / max(ref["gl_mrstft"], 1e-12))
            if i < 2:
                audio_out[ref["name"]] = y
            if i == 0:
                images[ref["name"]] = spectrogram_image(spec, [ref["audio"], y, ref["gl"]],
                                                        ["original", "vocoder", "Griffin-Lim 64"])
        metrics = {k: float(np.mean(v)) for k, v in rows.items()}
        return Validation(metrics=metrics, audio=audio_out, images=images, sample_rate=spec.sample_rate)


def spectrogram_image(spec: MelSpec, signals: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
    """Stacked log-mel images of ``signals`` -> ``(H, W, 3)`` uint8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(signals), 1, figsize=(8, 2.2 * len(signals)), squeeze=False)
    for ax, sig, title in zip(axes[:, 0], signals, titles):
        ax.imshow(numpy_log_mel(spec, np.asarray(sig, dtype=np.float32)), origin="lower", aspect="auto",
                  vmin=spec.log_min, vmax=1.0, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img
