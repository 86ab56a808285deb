"""Per-tensor activation ranges of every quantizable layer's input, from real samples.

Two passes over the calibration samples, as TensorRT's histogram calibrators do: the first finds each
input's largest magnitude, the second fills a histogram of |x| over [0, that maximum]. The ranges
(amax) are then read off the histogram by one of four methods:

- `max`: the largest magnitude seen (no clipping; outliers stretch the scale);
- `percentile`: the magnitude below which `percentile` % of the values lie (clips rare outliers);
- `mse`: the amax whose INT8 rounding-plus-clipping error over the histogram is smallest;
- `entropy`: the amax whose 128-level quantized histogram is closest to the clipped one in KL divergence,
  the criterion of TensorRT's default calibrator (IInt8EntropyCalibrator2).

Both passes save their state after every batch to a cache file keyed by the model's weights, the samples,
the batch size and the bin count, so an interrupted run resumes where it stopped and a finished one is
read back instantly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lightlip_ros.atomic_files import atomic_write
from lightlip_ros.models import weight_fingerprint

from .layers import quantizable_layers
from .numerics import INT8_MAX, scale_from_amax
from .samples import SampleSet

METHODS = ("max", "percentile", "mse", "entropy")
ENTROPY_LEVELS = 128  # quantized bins of |x| in the entropy criterion, as TensorRT uses
DEFAULT_BINS = 2048
DEFAULT_PERCENTILE = 99.99
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class ActivationStats:
    """amax (L,) and histograms (L, bins) of |input| for the layers `names`."""
    names: tuple
    amax: np.ndarray
    histograms: np.ndarray

    def ranges(self, method: str, percentile: float = DEFAULT_PERCENTILE) -> dict:
        """{layer name: amax} chosen by `method` (see the module docstring)."""
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r} (choose from {', '.join(METHODS)})")
        if method == "percentile" and not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        chosen = {}
        for name, amax, histogram in zip(self.names, self.amax, self.histograms):
            if method == "max" or amax == 0 or histogram.sum() == 0:
                chosen[name] = float(amax)
            elif method == "percentile":
                chosen[name] = _percentile_amax(histogram, float(amax), percentile)
            elif method == "mse":
                chosen[name] = _mse_amax(histogram, float(amax))
            else:
                chosen[name] = _entropy_amax(histogram, float(amax))
        return chosen


def _percentile_amax(histogram: np.ndarray, amax: float, percentile: float) -> float:
    cumulative = np.cumsum(histogram) / histogram.sum()
    index = int(np.searchsorted(cumulative, percentile / 100.0))
    return amax * min(index + 1, len(histogram)) / len(histogram)


def _mse_amax(histogram: np.ndarray, amax: float) -> float:
    bins = len(histogram)
    width = amax / bins
    centres = (np.arange(bins) + 0.5) * width
    # Candidate ranges: every 16th bin edge from 1/16 of the maximum up to the maximum itself.
    candidates = np.arange(bins // 16, bins + 1, 16) * width
    scales = scale_from_amax(candidates).astype(np.float64)[:, None]
    dequantized = np.minimum(np.rint(centres[None, :] / scales), INT8_MAX) * scales
    errors = ((centres[None, :] - dequantized) ** 2 * histogram[None, :]).sum(axis=1)
    return float(candidates[int(np.argmin(errors))])


def _entropy_amax(histogram: np.ndarray, amax: float, levels: int = ENTROPY_LEVELS) -> float:
    """The bin edge i (levels <= i <= bins) minimising KL(P_i || Q_i): P_i is the histogram cut at i with
    everything above folded into its last bin, Q_i the same bins merged into `levels` groups and spread
    back evenly over each group's non-empty bins. Written here: no maintained library exposes this
    criterion on a precomputed histogram."""
    bins = len(histogram)
    if bins <= levels:
        return amax
    best_edge, best_divergence = bins, np.inf
    tail = np.cumsum(histogram[::-1])[::-1]  # tail[i] = histogram[i:].sum()
    for edge in range(levels, bins + 1):
        reference = histogram[:edge].astype(np.float64)
        if edge < bins:
            reference[-1] += tail[edge]
        occupied = reference > 0
        group = np.arange(edge) * levels // edge  # which of the `levels` groups each bin falls in
        totals = np.bincount(group, weights=histogram[:edge], minlength=levels)
        counts = np.bincount(group, weights=occupied, minlength=levels)
        quantized = np.where(occupied, totals[group] / np.maximum(counts[group], 1), 0.0)
        p, q = reference / reference.sum(), quantized / max(quantized.sum(), 1e-300)
        support = p > 0
        if np.any(q[support] == 0):  # the clipped mass landed in an empty bin: Q cannot explain P
            continue
        divergence = float(np.sum(p[support] * np.log(p[support] / q[support])))
        if divergence < best_divergence:
            best_edge, best_divergence = edge, divergence
    return amax * best_edge / bins


class _InputRecorder:
    """Forward pre-hooks that hand each layer's input to `record(index, tensor)`."""

    def __init__(self, layers, record):
        self._handles = [module.register_forward_pre_hook(self._hook(index, record))
                         for index, module in enumerate(layers)]

    @staticmethod
    def _hook(index, record):
        def hook(module, args):
            record(index, args[0].detach())
        return hook

    def close(self):
        for handle in self._handles:
            handle.remove()


def collect_activation_stats(model: nn.Module, samples: SampleSet, cache_path=None, batch_size: int = 32,
                             bins: int = DEFAULT_BINS, progress: bool = True) -> ActivationStats:
    """Statistics of every quantizable layer's input over `samples` (model: BatchNorm already folded)."""
    layers = quantizable_layers(model)
    names = tuple(layers)
    key = json.dumps({"format": _CACHE_FORMAT, "model": weight_fingerprint(model), "samples": samples.fingerprint(),
                      "layers": names, "batch_size": batch_size, "bins": bins}, sort_keys=True)
    state = _load_state(cache_path, key) or {
        "amax": np.zeros(len(names)), "histograms": np.zeros((len(names), bins)), "max_done": 0, "hist_done": 0}
    batches = samples.batch_count(batch_size)

    amax, histograms = state["amax"], state["histograms"]

    def record_max(index, x):
        amax[index] = max(amax[index], float(x.abs().max()))

    def record_histogram(index, x):
        if amax[index] > 0:
            histograms[index] += torch.histc(x.abs().float(), bins, 0, float(amax[index])).double().numpy()

    for counter, record in (("max_done", record_max), ("hist_done", record_histogram)):
        if state[counter] >= batches:
            continue
        recorder = _InputRecorder(layers.values(), record)
        try:
            description = "calibration: ranges" if counter == "max_done" else "calibration: histograms"
            with torch.inference_mode(), tqdm(total=batches, initial=state[counter], desc=description,
                                              unit="batch", disable=not progress, leave=False) as bar:
                for index, (mel, face, _) in enumerate(samples.batches(batch_size)):
                    if index < state[counter]:
                        continue
                    model(mel, face)
                    state[counter] = index + 1
                    _save_state(cache_path, key, state)
                    bar.update()
        finally:
            recorder.close()
    return ActivationStats(names, amax.copy(), histograms.copy())


def _load_state(cache_path, key):
    if cache_path is None or not Path(cache_path).is_file():
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            return {"amax": saved["amax"].astype(np.float64), "histograms": saved["histograms"].astype(np.float64),
                    "max_done": int(saved["max_done"]), "hist_done": int(saved["hist_done"])}
    except (OSError, KeyError, ValueError):
        return None  # unreadable or foreign file: start afresh and overwrite it


def _save_state(cache_path, key, state):
    if cache_path is None:
        return
    with atomic_write(cache_path) as temporary:
        np.savez(temporary, key=np.array(key), amax=state["amax"], histograms=state["histograms"],
                 max_done=np.array(state["max_done"]), hist_done=np.array(state["hist_done"]))
