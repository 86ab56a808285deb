"""Selective mixed precision on a tiny student with real inputs (the bundled face photo and speech).

The student is briefly fitted to the real face so that its layers carry real signal; every test then runs
the real code paths: histogram calibration, PyTorch Q/DQ emulation, ONNX export through the core exporter,
ONNX Runtime sessions.
"""
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import ASSETS
from lightlip_ros.engines.onnx_export import export_generator_onnx
from lightlip_ros.models import student, weight_fingerprint
from training.quant.calibration import ActivationStats, collect_activation_stats
from training.quant.emulation import emulate_int8, quantize_layers
from training.quant.evaluate import comparison_image, evaluate_files, media_clip
from training.quant.export import ExportError, export_precisions, insert_qdq, name_layers
from lightlip_ros.engines.onnx_graph import float32_carrier, layer_precisions, read_metadata
from training.quant.layers import fold_batchnorm, quantizable_layers
from training.quant.numerics import fake_quantize, quantize_weight, scale_from_amax
from training.quant.plan import QuantPlan
from training.quant.samples import SampleSet
from training.quant.sensitivity import LayerSensitivity, Quality, choose_fp16_layers, make_plan

TOP_K = 4


@pytest.fixture(scope="module")
def samples():
    return SampleSet.from_media(ASSETS / "face.jpg", ASSETS / "speech.wav", limit=24)


@pytest.fixture(scope="module")
def model(samples):
    """A 1/16-width student fitted for a few steps to reconstruct the real face from the real mel windows."""
    torch.manual_seed(0)
    net = student(0.0625)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    net.train()
    for _ in range(30):
        loss = (net(samples.mel, samples.face) - samples.target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def plan(model, samples, tmp_path_factory):
    return make_plan(model, samples, samples, top_k=TOP_K, cache_dir=tmp_path_factory.mktemp("cache"),
                     batch_size=8, progress=False)


@pytest.fixture(scope="module")
def exported(model, plan, tmp_path_factory):
    return export_precisions(model, tmp_path_factory.mktemp("onnx"), plan)


def _session(model_or_path):
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def test_fake_quantize_matches_onnx_quantize_dequantize():
    x = np.concatenate([np.linspace(-3, 3, 1001), [0.0125, -0.0125, 0.0375, 100.0, -100.0]]).astype(np.float32)
    scale = scale_from_amax(2.5)
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [x.size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.size])],
        [numpy_helper.from_array(np.array(scale, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")])
    reference = _session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).run(None, {"x": x})[0]
    emulated = fake_quantize(torch.from_numpy(x), float(scale)).numpy()
    np.testing.assert_array_equal(emulated, reference)
    assert emulated.max() == pytest.approx(127 * float(scale)) and emulated.min() == pytest.approx(-128 * float(scale))


def test_weights_quantize_per_output_channel():
    weight = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    weight[2] *= 100.0  # one channel far larger: per-channel scales keep the others precise
    quantized, scale = quantize_weight(weight, axis=0)
    assert quantized.dtype == np.int8 and scale.dtype == np.float16 and scale.shape == (4,)
    assert np.abs(quantized).reshape(4, -1).max(1).tolist() == [127] * 4
    transposed, transposed_scale = quantize_weight(weight.transpose(1, 0, 2, 3), axis=1)
    np.testing.assert_array_equal(transposed, quantized.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(transposed_scale, scale)


def test_batchnorm_folds_without_changing_the_output(model, samples):
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert list(quantizable_layers(folded)) == list(quantizable_layers(model))
    with torch.no_grad():
        np.testing.assert_allclose(folded(samples.mel, samples.face), model(samples.mel, samples.face), atol=2e-6)


def test_calibration_resumes_after_an_interruption(model, samples, tmp_path):
    folded = fold_batchnorm(model)
    complete = collect_activation_stats(folded, samples, tmp_path / "once.npz", batch_size=8, progress=False)

    calls = {"count": 0}
    layer = next(iter(quantizable_layers(folded).values()))

    def interrupt(module, args):
        calls["count"] += 1
        if calls["count"] == 4:  # first pass over 3 batches done, then the 1st histogram batch fails
            raise KeyboardInterrupt

    handle = layer.register_forward_pre_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        collect_activation_stats(folded, samples, tmp_path / "resumed.npz", batch_size=8, progress=False)
    calls["count"] = 0
    resumed = collect_activation_stats(folded, samples, tmp_path / "resumed.npz", batch_size=8, progress=False)
    handle.remove()
    assert calls["count"] == 3  # only the 3 histogram batches ran again
    np.testing.assert_array_equal(resumed.amax, complete.amax)
    np.testing.assert_array_equal(resumed.histograms, complete.histograms)

    calls["count"] = 0
    handle = layer.register_forward_pre_hook(interrupt)
    collect_activation_stats(folded, samples, tmp_path / "resumed.npz", batch_size=8, progress=False)
    handle.remove()
    assert calls["count"] == 0  # finished statistics come from the cache


def test_range_methods_order(model, samples):
    stats = collect_activation_stats(fold_batchnorm(model), samples, batch_size=8, progress=False)
    maximum, percentile, mse, entropy = (stats.ranges(method) for method in ("max", "percentile", "mse", "entropy"))
    for name in stats.names:
        assert 0 < mse[name] <= maximum[name] and 0 < percentile[name] <= maximum[name]
        assert 0 < entropy[name] <= maximum[name]
    assert maximum["face_encoder_blocks.0.0.conv_block.0"] <= 1.0  # the face input lies in [0, 1]
    full = stats.ranges("percentile", 100.0)
    assert all(full[name] == pytest.approx(maximum[name]) for name in stats.names)


def test_entropy_range_clips_outliers_and_keeps_a_flat_distribution():
    """The KL criterion keeps the whole range of a uniform input and cuts a Gaussian's rare outliers
    (a few sigma out: above where 99.9 % of the mass lies, far below the largest value)."""
    rng = np.random.default_rng(0)
    values = np.abs(rng.standard_normal(1_000_000))
    values[:20] *= 8
    histogram = np.histogram(values, 2048, (0, values.max()))[0].astype(np.float64)
    stats = ActivationStats(("gauss",), np.array([values.max()]), histogram[None])
    entropy = stats.ranges("entropy")["gauss"]
    assert stats.ranges("percentile", 99.9)["gauss"] < entropy < 0.5 * values.max()
    uniform = np.histogram(rng.uniform(0, 2, 1_000_000), 2048, (0, 2))[0].astype(np.float64)
    assert ActivationStats(("flat",), np.array([2.0]), uniform[None]).ranges("entropy")["flat"] == 2.0


def test_plan_ranks_every_layer_and_keeps_the_top_k(model, plan, tmp_path):
    names = list(quantizable_layers(model))
    assert sorted(layer.name for layer in plan.layers) == sorted(names)
    ranked = [layer.psnr_vs_fp32_db for layer in plan.layers]
    assert ranked == sorted(ranked)
    assert plan.fp16_layers == [layer.name for layer in plan.layers[:TOP_K]]
    assert [step["fp16_count"] for step in plan.steps] == [0, TOP_K]
    assert plan.model["sha256"] == weight_fingerprint(fold_batchnorm(model))

    plan.save(tmp_path / "plan.json")
    again = QuantPlan.load(tmp_path / "plan.json")
    assert again.fp16_layers == plan.fp16_layers and again.input_amax == plan.input_amax
    assert json.loads((tmp_path / "plan.json").read_text())["fp16_layers"] == plan.fp16_layers
    table = plan.markdown()
    assert all(f"`{name}`" in table for name in names)


class ScriptedEvaluator:
    """An evaluator whose PSNR drop for each number of FP16 layers is given: the budget search alone."""

    def __init__(self, drops):
        self.drops, self.fp32, self.evaluated = drops, Quality(30.0, 200.0), []

    def with_int8(self, int8_layers):
        fp16_count = len(self.drops) - 1 - len(int8_layers)
        self.evaluated.append(fp16_count)
        return Quality(self.fp32.psnr_db - self.drops[fp16_count], 40.0)


@pytest.mark.parametrize("budget, want", [(5.0, 0), (1.0, 3), (0.4, 4), (-1.0, 5)])
def test_psnr_budget_picks_the_shortest_sufficient_prefix(budget, want):
    # Drops with 0..5 of the ranked layers in FP16; not monotonic (a second FP16 layer can make it worse).
    drops = [3.0, 2.5, 2.6, 0.9, 0.4, 0.0]
    ranking = [LayerSensitivity(f"conv{i}", "Conv", 30.0 + i, 0.5) for i in range(5)]
    evaluator = ScriptedEvaluator(drops)
    names, steps = choose_fp16_layers(evaluator, ranking, {f"conv{i}": None for i in range(5)},
                                      max_psnr_drop_db=budget, progress=False)
    assert names == [f"conv{i}" for i in range(want)]
    assert [step.fp16_count for step in steps] == evaluator.evaluated == list(range(want + 1))
    assert [step.psnr_drop_db for step in steps] == pytest.approx(drops[:want + 1])


def test_exported_files_carry_exactly_the_planned_precision(exported, plan):
    assert set(exported) == {"fp32", "fp16", "int8", "mixed"}
    expected = {name: "fp16" if name in plan.fp16_layers else "int8" for name in plan.input_amax}
    for precision, path in exported.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        layers = layer_precisions(model)
        assert set(layers) == set(plan.input_amax)
        got = {name: layer["precision"] for name, layer in layers.items()}
        want = {"fp32": dict.fromkeys(got, "fp32"), "fp16": dict.fromkeys(got, "fp16"),
                "int8": dict.fromkeys(got, "int8"), "mixed": expected}[precision]
        assert got == want
        assert read_metadata(model)["precision"] == precision
        quantizers = [node for node in model.graph.node if node.op_type == "QuantizeLinear"]
        assert sorted(node.name for node in quantizers) == sorted(
            f"{name}.input_quantize" for name, p in want.items() if p == "int8")
        for node in model.graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and precision != "fp32":
                scale = next(init for init in model.graph.initializer if init.name == node.input[1])
                assert scale.data_type == TensorProto.FLOAT16  # the dtype of the FP16 tensors they apply to


def test_fp16_file_holds_fp16_weights_and_float32_io(exported):
    model = onnx.load(str(exported["fp16"]))
    dtypes = {init.data_type for init in model.graph.initializer}
    assert dtypes == {TensorProto.FLOAT16}
    assert exported["fp16"].stat().st_size < 0.6 * exported["fp32"].stat().st_size
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
        assert value.type.tensor_type.shape.dim[0].dim_param  # the batch dimension is dynamic
    inferred = onnx.shape_inference.infer_shapes(model)
    conv_outputs = {out for node in model.graph.node if node.op_type in ("Conv", "ConvTranspose")
                    for out in node.output}
    assert {v.type.tensor_type.elem_type for v in inferred.graph.value_info if v.name in conv_outputs} == {
        TensorProto.FLOAT16}


def test_float32_carrier_keeps_the_int8_layers_and_drops_every_float16(model, plan, exported, samples):
    """The graph a TensorRT 10.x weakly typed build reads: same Q/DQ and INT8 weights, no float16 left."""
    feed = {"mel": samples.mel.numpy(), "face": samples.face.numpy()}
    folded = fold_batchnorm(model)
    half_rounded = fold_batchnorm(model)
    with torch.no_grad():
        for parameter in half_rounded.parameters():
            parameter.copy_(parameter.half().float())
    for precision in ("fp16", "int8", "mixed"):
        written = onnx.load(str(exported[precision]))
        carrier = float32_carrier(written)
        onnx.checker.check_model(carrier, full_check=True)
        originals = {init.name: init for init in written.graph.initializer}
        for init in carrier.graph.initializer:
            original = originals.pop(init.name)
            assert init.data_type == (TensorProto.FLOAT if original.data_type == TensorProto.FLOAT16
                                      else original.data_type)
            np.testing.assert_array_equal(numpy_helper.to_array(init), numpy_helper.to_array(original))
        assert not originals
        tensors = list(carrier.graph.value_info) + list(carrier.graph.input) + list(carrier.graph.output)
        assert TensorProto.FLOAT16 not in {value.type.tensor_type.elem_type for value in tensors}
        assert {node.op_type for node in written.graph.node} == {node.op_type for node in carrier.graph.node}
        want = {name: "fp32" if layer["precision"] == "fp16" else layer["precision"]
                for name, layer in layer_precisions(written).items()}
        assert {name: layer["precision"] for name, layer in layer_precisions(carrier).items()} == want
        # It computes in float32 what the emulation computes with the file's float16 parameters.
        int8 = [name for name, precision in want.items() if precision == "int8"]
        with torch.no_grad(), emulate_int8(half_rounded, quantize_layers(folded, plan.input_amax, int8)):
            emulated = half_rounded(samples.mel, samples.face).numpy()
        difference = np.abs(_session(carrier).run(None, feed)[0] - emulated)
        assert np.quantile(difference, 0.999) < 1e-5, precision


def test_every_file_runs_any_batch_size(exported, samples):
    for path in exported.values():
        session = _session(path)
        for batch in (1, 3):
            frames = session.run(None, {"mel": samples.mel[:batch].numpy(), "face": samples.face[:batch].numpy()})[0]
            assert frames.shape == (batch, 3, 96, 96) and frames.dtype == np.float32
            assert np.isfinite(frames).all()


def test_mixed_error_is_below_int8_everywhere_on_real_inputs(exported):
    clip = media_clip(ASSETS / "face.jpg", ASSETS / "speech.wav", limit=24)
    table = {row.label: row for row in evaluate_files(exported, [clip], batch_size=8, progress=False)}
    assert table["fp32"].psnr_drop_db == 0.0
    assert table["fp16"].psnr_vs_fp32_db > table["mixed"].psnr_vs_fp32_db > table["int8"].psnr_vs_fp32_db
    assert table["int8"].psnr_vs_fp32_db < 60  # INT8 really changes the output (not a silent FP path)
    assert table["mixed"].fp16_layers == TOP_K
    assert table["mixed"].int8_layers == table["int8"].int8_layers - TOP_K


def test_comparison_image_shows_each_file_and_its_difference(exported):
    clip = media_clip(ASSETS / "face.jpg", ASSETS / "speech.wav", limit=24)
    image = comparison_image(exported, clip, frames=4, gain=8)
    tile_h, tile_w, label_w = 96, 192, 190
    assert image.shape == ((1 + 4 + 3) * tile_h, label_w + 4 * tile_w, 3)
    rows = {label: image[row * tile_h:(row + 1) * tile_h, label_w:].astype(np.float64)
            for row, label in enumerate(["truth", "fp32", "fp16", "int8", "mixed", "d_fp16", "d_int8", "d_mixed"])}
    assert np.abs(rows["truth"] - rows["fp32"]).mean() > 1  # the model's output, not the truth again
    assert rows["d_fp16"].mean() < rows["d_mixed"].mean() < rows["d_int8"].mean()


def test_onnx_qdq_matches_the_pytorch_emulation(model, plan, samples, tmp_path):
    """With float32 compute the exported Q/DQ graph and the emulation in PyTorch are the same arithmetic."""
    folded = fold_batchnorm(model)
    quantized = quantize_layers(folded, plan.input_amax)
    graph = onnx.load(str(export_generator_onnx(folded, tmp_path / "fp32.onnx", opset=19)))
    name_layers(graph, folded)
    insert_qdq(graph, quantized)
    onnx.checker.check_model(graph, full_check=True)
    onnx_frames = _session(graph).run(None, {"mel": samples.mel.numpy(), "face": samples.face.numpy()})[0]
    with torch.no_grad(), emulate_int8(folded, quantized):
        torch_frames = folded(samples.mel, samples.face).numpy()
    with torch.no_grad():
        fp32_frames = folded(samples.mel, samples.face).numpy()
    difference = np.abs(onnx_frames - torch_frames)
    assert np.abs(fp32_frames - torch_frames).max() > 20 * np.quantile(difference, 0.999)
    assert np.quantile(difference, 0.999) < 1e-5  # rare rounding ties may flip a level; nothing else differs


def test_export_refuses_a_plan_made_for_other_weights(model, plan, tmp_path):
    other = student(0.0625).eval()
    with pytest.raises(ExportError, match="other weights"):
        export_precisions(other, tmp_path, plan, precisions=("mixed",))
    with pytest.raises(ExportError, match="need a plan"):
        export_precisions(model, tmp_path, None, precisions=("int8",))


def test_onnxruntime_engine_reports_each_files_precision(exported):
    from lightlip_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    for precision, path in exported.items():
        assert OnnxRuntimeEngine(path).precision == precision, path
