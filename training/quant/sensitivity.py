"""Which layers lose the most when they alone run in INT8, and which set to keep in FP16.

Every quantizable layer is quantized to INT8 on its own (the rest stay FP32) and the generator's output on
held-out samples is compared with the FP32 output and with the ground truth. Layers are ranked by the
fidelity of the output to FP32 (lower PSNR against FP32 = more sensitive): it is never negative and does
not depend on how well the model fits the data, so small differences still rank reliably. The FP16 set is
then chosen either as the top k layers or, for a PSNR budget, as the shortest prefix of the ranking whose
mixed model (that prefix in FP16, every other layer INT8) loses at most the budget against FP32 on the
ground truth. Per-layer results are cached after each layer, so an interrupted analysis resumes.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn
from tqdm import tqdm


from lightlip_ros.atomic_files import atomic_write_json
from lightlip_ros.engines.base import FP16, INT8
from lightlip_ros.models import weight_fingerprint

from .calibration import DEFAULT_BINS, DEFAULT_PERCENTILE, collect_activation_stats
from .emulation import LayerQuantization, emulate_int8, quantize_layers
from .layers import fold_batchnorm
from .plan import LayerPlan, QuantPlan
from .samples import SampleSet

# PSNR of a perfect match is infinite; reports cap it here (an MSE of 1e-20 on [0, 1] images, far below
# any float32 rounding difference, so every real difference still ranks).
PSNR_CAP_DB = 200.0
_CACHE_FORMAT = 1


def psnr_db(mse: float) -> float:
    """PSNR of images in [0, 1] with mean squared error `mse`, capped at PSNR_CAP_DB."""
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else -10.0 * math.log10(mse)


@dataclass(frozen=True)
class Quality:
    """psnr_db: mean per-frame PSNR against the ground truth over the mouth regions;
    psnr_vs_fp32_db: PSNR of the outputs against the FP32 model's outputs (MSE over all mouth regions)."""
    psnr_db: float
    psnr_vs_fp32_db: float


@dataclass(frozen=True)
class LayerSensitivity:
    name: str
    op: str
    psnr_vs_fp32_db: float
    psnr_drop_db: float  # FP32's PSNR against the ground truth minus this layer-in-INT8 model's


class Evaluator:
    """Runs a folded model on held-out samples and scores its outputs over each frame's mouth region."""

    def __init__(self, model: nn.Module, samples: SampleSet, batch_size: int = 32):
        self.model = model
        self.samples = samples
        self.batch_size = batch_size
        self.mask = torch.zeros(len(samples), 1, 96, 96, dtype=torch.float64)
        for mask, (x1, y1, x2, y2) in zip(self.mask, samples.regions.tolist()):
            mask[:, y1:y2, x1:x2] = 1.0
        self.reference = self.run()
        self.fp32 = self.score(self.reference)

    def run(self) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([self.model(mel, face) for mel, face, _ in self.samples.batches(self.batch_size)])

    def _squared_error(self, outputs, other) -> torch.Tensor:
        return (outputs.double() - other.double()) ** 2 * self.mask

    def score(self, outputs: torch.Tensor) -> Quality:
        values = 3 * self.mask.sum((1, 2, 3))
        per_frame = self._squared_error(outputs, self.samples.target).sum((1, 2, 3)) / values
        psnr = sum(psnr_db(float(mse)) for mse in per_frame) / len(per_frame)
        fidelity = float(self._squared_error(outputs, self.reference).sum() / values.sum())
        return Quality(psnr, psnr_db(fidelity))

    def with_int8(self, quantized: Mapping[str, LayerQuantization]) -> Quality:
        with emulate_int8(self.model, quantized):
            return self.score(self.run())


def rank_layers(evaluator: Evaluator, quantized: Mapping[str, LayerQuantization], cache_path=None,
                progress: bool = True) -> list:
    """LayerSensitivity of every layer in `quantized`, most sensitive first."""
    layers = dict(evaluator.model.named_modules())
    key = {"format": _CACHE_FORMAT, "model": weight_fingerprint(evaluator.model),
           "samples": evaluator.samples.fingerprint(),
           "scales": {name: float(layer.input_scale) for name, layer in quantized.items()}}
    done = _load_results(cache_path, key)
    results = []
    for name in tqdm(quantized, desc="sensitivity", unit="layer", disable=not progress, leave=False):
        if name not in done:
            quality = evaluator.with_int8({name: quantized[name]})
            done[name] = {"psnr_vs_fp32_db": quality.psnr_vs_fp32_db,
                          "psnr_drop_db": evaluator.fp32.psnr_db - quality.psnr_db}
            _save_results(cache_path, key, done)
        op = "ConvTranspose" if isinstance(layers[name], nn.ConvTranspose2d) else "Conv"
        results.append(LayerSensitivity(name, op, **done[name]))
    return sorted(results, key=lambda layer: (layer.psnr_vs_fp32_db, -layer.psnr_drop_db))


@dataclass(frozen=True)
class BudgetStep:
    """The mixed model with the `fp16_count` most sensitive layers in FP16."""
    fp16_count: int
    quality: Quality
    psnr_drop_db: float


def choose_fp16_layers(evaluator: Evaluator, ranking: Sequence[LayerSensitivity],
                       quantized: Mapping[str, LayerQuantization], top_k: int | None = None,
                       max_psnr_drop_db: float | None = None, progress: bool = True):
    """(FP16 layer names, the BudgetSteps evaluated). Exactly one of top_k / max_psnr_drop_db."""
    if (top_k is None) == (max_psnr_drop_db is None):
        raise ValueError("give exactly one budget: top_k or max_psnr_drop_db")
    names = [layer.name for layer in ranking]
    if top_k is not None and not 0 <= top_k <= len(names):
        raise ValueError(f"top_k must be between 0 and {len(names)}, got {top_k}")

    def step(count):
        int8 = {name: quantized[name] for name in names[count:]}
        quality = evaluator.with_int8(int8)
        return BudgetStep(count, quality, evaluator.fp32.psnr_db - quality.psnr_db)

    steps = [step(0)]  # INT8 everywhere: always reported
    if top_k is not None:
        if top_k:
            steps.append(step(top_k))
        return names[:top_k], steps
    with tqdm(total=len(names), desc="FP16 budget", unit="layer", disable=not progress, leave=False) as bar:
        while steps[-1].psnr_drop_db > max_psnr_drop_db and steps[-1].fp16_count < len(names):
            steps.append(step(steps[-1].fp16_count + 1))
            bar.update()
    return names[:steps[-1].fp16_count], steps


def _load_results(cache_path, key) -> dict:
    if cache_path is None or not Path(cache_path).is_file():
        return {}
    try:
        saved = json.loads(Path(cache_path).read_text())
    except (OSError, ValueError):
        return {}
    return saved.get("layers", {}) if saved.get("key") == key else {}


def _save_results(cache_path, key, results):
    if cache_path is not None:
        atomic_write_json(cache_path, {"key": key, "layers": results})


def make_plan(model: nn.Module, calibration: SampleSet, evaluation: SampleSet, method: str = "percentile",
              percentile: float = DEFAULT_PERCENTILE, top_k: int | None = None,
              max_psnr_drop_db: float | None = None, cache_dir=None, batch_size: int = 32,
              model_path: str = "", progress: bool = True) -> QuantPlan:
    """Calibrate, rank every layer, choose the FP16 set by the budget: the whole analysis as a QuantPlan."""
    folded = fold_batchnorm(model)
    cache_dir = Path(cache_dir) if cache_dir is not None else None
    stats = collect_activation_stats(folded, calibration, cache_dir / "calibration.npz" if cache_dir else None,
                                     batch_size=batch_size, bins=DEFAULT_BINS, progress=progress)
    input_amax = stats.ranges(method, percentile)
    quantized = quantize_layers(folded, input_amax)
    evaluator = Evaluator(folded, evaluation, batch_size)
    ranking = rank_layers(evaluator, quantized, cache_dir / "sensitivity.json" if cache_dir else None, progress)
    fp16, steps = choose_fp16_layers(evaluator, ranking, quantized, top_k, max_psnr_drop_db, progress)
    layers = [LayerPlan(layer.name, layer.op, FP16 if layer.name in fp16 else INT8, input_amax[layer.name],
                        layer.psnr_vs_fp32_db, layer.psnr_drop_db, rank)
              for rank, layer in enumerate(ranking, 1)]
    return QuantPlan(
        model={"path": str(model_path), "sha256": weight_fingerprint(folded), "config": getattr(model, "config", {})},
        calibration={"method": method, "percentile": percentile, "samples": calibration.source,
                     "sample_count": len(calibration), "bins": DEFAULT_BINS, "batch_size": batch_size},
        evaluation={"samples": evaluation.source, "sample_count": len(evaluation),
                    "region": "mouth region (training.data.evaluate.mouth_region: lips box + margin, else lower half)",
                    "fp32_psnr_db": evaluator.fp32.psnr_db},
        budget={"top_k": top_k} if top_k is not None else {"max_psnr_drop_db": max_psnr_drop_db},
        layers=layers,
        steps=[{"fp16_count": step.fp16_count, "psnr_db": step.quality.psnr_db, "psnr_drop_db": step.psnr_drop_db,
                "psnr_vs_fp32_db": step.quality.psnr_vs_fp32_db} for step in steps])
