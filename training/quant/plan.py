"""The precision plan: which layers stay FP16, every layer's calibrated input range, and the evidence.

Written by `lightlip-quant sensitivity` as JSON (read back by `export`) and as a Markdown table for people.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lightlip_ros.atomic_files import atomic_write_json
from lightlip_ros.engines.base import FP16, INT8
from lightlip_ros.errors import LightLipError

PLAN_FORMAT = "lightlip-quant-plan"
PLAN_VERSION = 1


class PlanError(LightLipError, ValueError):
    """A plan file that cannot be used; one readable line."""


@dataclass
class LayerPlan:
    name: str
    op: str
    precision: str  # FP16 or INT8
    input_amax: float
    psnr_vs_fp32_db: float  # this layer alone in INT8
    psnr_drop_db: float
    rank: int  # 1 = most sensitive


@dataclass
class QuantPlan:
    model: dict  # path, sha256 (of the folded weights), config
    calibration: dict  # method, percentile, samples, bins, batch_size
    evaluation: dict  # samples, region, fp32_psnr_db
    budget: dict  # {"top_k": k} or {"max_psnr_drop_db": x}
    layers: list  # LayerPlan, in rank order
    steps: list = field(default_factory=list)  # [{"fp16_count", "psnr_db", "psnr_drop_db", "psnr_vs_fp32_db"}]

    @property
    def fp16_layers(self) -> list:
        return [layer.name for layer in self.layers if layer.precision == FP16]

    @property
    def input_amax(self) -> dict:
        return {layer.name: layer.input_amax for layer in self.layers}

    def to_json(self) -> dict:
        return {"format": PLAN_FORMAT, "version": PLAN_VERSION, "model": self.model,
                "calibration": self.calibration, "evaluation": self.evaluation, "budget": self.budget,
                "fp16_layers": self.fp16_layers, "layers": [asdict(layer) for layer in self.layers],
                "steps": self.steps}

    def save(self, path) -> Path:
        atomic_write_json(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path) -> "QuantPlan":
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"{path}: no such plan file (make one with `lightlip-quant sensitivity`)")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise PlanError(f"{path}: not a JSON plan ({error})") from error
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise PlanError(f"{path}: not a LightLip precision plan")
        if data.get("version") != PLAN_VERSION:
            raise PlanError(f"{path}: plan version {data.get('version')} is not supported (expected {PLAN_VERSION})")
        try:
            layers = [LayerPlan(**layer) for layer in data["layers"]]
            plan = cls(data["model"], data["calibration"], data["evaluation"], data["budget"], layers,
                       data.get("steps", []))
        except (KeyError, TypeError) as error:
            raise PlanError(f"{path}: incomplete plan ({error})") from error
        bad = [layer.name for layer in layers if layer.precision not in (FP16, INT8)]
        if bad:
            raise PlanError(f"{path}: layers with a precision other than fp16/int8: {', '.join(bad)}")
        return plan

    def markdown(self) -> str:
        """The sensitivity table and the chosen FP16 set."""
        budget = (f"top {self.budget['top_k']} layers" if "top_k" in self.budget
                  else f"PSNR drop <= {self.budget['max_psnr_drop_db']} dB")
        lines = [
            f"# INT8 sensitivity of {self.model.get('path', 'the model')}",
            "",
            f"- Calibration: {self.calibration['method']}"
            + (f" ({self.calibration['percentile']} %)" if self.calibration["method"] == "percentile" else "")
            + f" on {self.calibration['samples']}",
            f"- Evaluation: {self.evaluation['samples']}, PSNR over {self.evaluation['region']}; "
            f"FP32: {self.evaluation['fp32_psnr_db']:.3f} dB",
            f"- Budget: {budget}; FP16 layers chosen: {len(self.fp16_layers)} of {len(self.layers)}",
            "",
            "Each layer alone in INT8 (symmetric, per-channel weights, per-tensor input), the rest FP32:",
            "",
            "| rank | layer | op | input amax | PSNR vs FP32 (dB) | PSNR drop (dB) | plan |",
            "|---:|---|---|---:|---:|---:|---|",
        ]
        for layer in self.layers:
            lines.append(f"| {layer.rank} | `{layer.name}` | {layer.op} | {layer.input_amax:.4g} | "
                         f"{layer.psnr_vs_fp32_db:.2f} | {layer.psnr_drop_db:+.4f} | {layer.precision.upper()} |")
        if self.steps:
            lines += ["", "Mixed models tried (the k most sensitive layers in FP16, the rest INT8):", "",
                      "| FP16 layers | PSNR (dB) | PSNR drop (dB) | PSNR vs FP32 (dB) |", "|---:|---:|---:|---:|"]
            for step in self.steps:
                lines.append(f"| {step['fp16_count']} | {step['psnr_db']:.3f} | {step['psnr_drop_db']:+.4f} | "
                             f"{step['psnr_vs_fp32_db']:.2f} |")
        return "\n".join(lines) + "\n"
