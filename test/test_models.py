"""Model zoo: Wav2Lip-faithful architectures (checked against an independent restatement of the official
definitions), every checkpoint format, clear errors, shapes, features, SyncNet and the profile numbers."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightlip_ros.models import (STUDENT_WIDTHS, TEACHER_WIDTHS, CheckpointError, GeneratorWidths, MouthShapeNet,
                                 SyncNet, Wav2LipGenerator, build_generator, load_generator, load_mouth_shape_net,
                                 load_syncnet, save_generator, save_mouth_shape_net, save_syncnet, student,
                                 sync_loss, syncnet_face_input, wav2lip_teacher)
from lightlip_ros.models.syncnet import matching_loss, matching_similarities
from lightlip_ros.models.profile import main as profile_main
from lightlip_ros.models.profile import measure


# ---- the official definitions, restated independently (layer tables of Wav2Lip and Nota's student) ----

class _Layer(nn.Module):
    """Official Conv2d / Conv2dTranspose: conv_block = (conv, BN), optional residual, ReLU."""

    def __init__(self, cin, cout, k, s, p, residual=False, transpose=False, output_padding=0):
        super().__init__()
        conv = (nn.ConvTranspose2d(cin, cout, k, s, p, output_padding) if transpose
                else nn.Conv2d(cin, cout, k, s, p))
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out += x
        return F.relu(out)


def R(c):  # residual 3x3 layer
    return (c, c, 3, 1, 1, True)


def T(cin, cout, s=2, p=1, op=1, k=3):  # transposed layer
    return (cin, cout, k, s, p, False, True, op)


WAV2LIP = {
    "face": [[(6, 16, 7, 1, 3)],
             [(16, 32, 3, 2, 1), R(32), R(32)],
             [(32, 64, 3, 2, 1), R(64), R(64), R(64)],
             [(64, 128, 3, 2, 1), R(128), R(128)],
             [(128, 256, 3, 2, 1), R(256), R(256)],
             [(256, 512, 3, 2, 1), R(512)],
             [(512, 512, 3, 1, 0), (512, 512, 1, 1, 0)]],
    "audio": [(1, 32, 3, 1, 1), R(32), R(32), (32, 64, 3, (3, 1), 1), R(64), R(64), (64, 128, 3, 3, 1), R(128),
              R(128), (128, 256, 3, (3, 2), 1), R(256), (256, 512, 3, 1, 0), (512, 512, 1, 1, 0)],
    "decoder": [[(512, 512, 1, 1, 0)],
                [T(1024, 512, 1, 0, 0), R(512)],
                [T(1024, 512), R(512), R(512)],
                [T(768, 384), R(384), R(384)],
                [T(512, 256), R(256), R(256)],
                [T(320, 128), R(128), R(128)],
                [T(160, 64), R(64), R(64)]],
    "output": (80, 32),
}
nef, naf, ndf = 4, 8, 8  # NotaWav2Lip defaults
NOTA_STUDENT = {
    "face": [[(6, nef, 7, 1, 3)], [(nef, nef * 2, 3, 2, 1)], [(nef * 2, nef * 4, 3, 2, 1)],
             [(nef * 4, nef * 8, 3, 2, 1)], [(nef * 8, nef * 16, 3, 2, 1)], [(nef * 16, nef * 32, 3, 2, 1)],
             [(nef * 32, nef * 32, 3, 1, 0), (nef * 32, nef * 32, 1, 1, 0)]],
    "audio": [(1, naf, 3, 1, 1), (naf, naf * 2, 3, (3, 1), 1), (naf * 2, naf * 4, 3, 3, 1),
              (naf * 4, naf * 8, 3, (3, 2), 1), (naf * 8, naf * 16, 3, 1, 0), (naf * 16, naf * 16, 1, 1, 0)],
    "decoder": [[(naf * 16, naf * 16, 1, 1, 0)], [T(nef * 32 + naf * 16, ndf * 16, 1, 0, 0)],
                [T(nef * 32 + ndf * 16, ndf * 16)], [T(nef * 16 + ndf * 16, ndf * 12)],
                [T(nef * 8 + ndf * 12, ndf * 8)], [T(nef * 4 + ndf * 8, ndf * 4)], [T(nef * 2 + ndf * 4, ndf * 2)]],
    "output": (nef + ndf * 2, ndf),
}
SYNCNET_COLOR = {
    "face": [(15, 32, 7, 1, 3), (32, 64, 5, (1, 2), 1), R(64), R(64), (64, 128, 3, 2, 1), R(128), R(128), R(128),
             (128, 256, 3, 2, 1), R(256), R(256), (256, 512, 3, 2, 1), R(512), R(512), (512, 512, 3, 2, 1),
             (512, 512, 3, 1, 0), (512, 512, 1, 1, 0)],
    "audio": [(1, 32, 3, 1, 1), R(32), R(32), (32, 64, 3, (3, 1), 1), R(64), R(64), (64, 128, 3, 3, 1), R(128),
              R(128), (128, 256, 3, (3, 2), 1), R(256), R(256), (256, 512, 3, 1, 0), (512, 512, 1, 1, 0)],
}


class OfficialGenerator(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(nn.Sequential(*(_Layer(*layer) for layer in block))
                                                 for block in spec["face"])
        self.audio_encoder = nn.Sequential(*(_Layer(*layer) for layer in spec["audio"]))
        self.face_decoder_blocks = nn.ModuleList(nn.Sequential(*(_Layer(*layer) for layer in block))
                                                 for block in spec["decoder"])
        cin, cmid = spec["output"]
        self.output_block = nn.Sequential(_Layer(cin, cmid, 3, 1, 1), nn.Conv2d(cmid, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, audio_sequences, face_sequences):  # Wav2Lip's forward pass, restated
        batch = audio_sequences.size(0)
        sequence = face_sequences.dim() > 4
        if sequence:
            audio_sequences = torch.cat([audio_sequences[:, i] for i in range(audio_sequences.size(1))], 0)
            face_sequences = torch.cat([face_sequences[:, :, i] for i in range(face_sequences.size(2))], 0)
        feats, x = [], face_sequences
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(audio_sequences)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), 1)
        x = self.output_block(x)
        return torch.stack(torch.split(x, batch, 0), 2) if sequence else x


class OfficialSyncNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.face_encoder = nn.Sequential(*(_Layer(*layer) for layer in SYNCNET_COLOR["face"]))
        self.audio_encoder = nn.Sequential(*(_Layer(*layer) for layer in SYNCNET_COLOR["audio"]))

    def forward(self, audio, face):
        a = self.audio_encoder(audio).view(audio.size(0), -1)
        v = self.face_encoder(face).view(face.size(0), -1)
        return F.normalize(a, p=2, dim=1), F.normalize(v, p=2, dim=1)


def _randomise(model, seed):
    """Non-trivial weights and BatchNorm statistics, so that a wrong wiring changes the output."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var") or (value.dim() == 1 and key.endswith("conv_block.1.weight")):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif value.dim() == 1:
            state[key] = torch.randn(value.shape, generator=generator) * 0.1
        else:
            state[key] = torch.randn(value.shape, generator=generator) / value[0].numel() ** 0.5
    model.load_state_dict(state)
    return model.eval()


def _shapes(model):
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _inputs(batch=2, frames=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if frames is None:
        return (torch.randn(batch, 1, 80, 16, generator=generator) * 2,
                torch.rand(batch, 6, 96, 96, generator=generator))
    return (torch.randn(batch, frames, 1, 80, 16, generator=generator) * 2,
            torch.rand(batch, 6, frames, 96, 96, generator=generator))


@pytest.fixture(scope="module")
def official_teacher():
    return _randomise(OfficialGenerator(WAV2LIP), seed=1)


@pytest.fixture(scope="module")
def official_student():
    return _randomise(OfficialGenerator(NOTA_STUDENT), seed=2)


# ---- architecture ----

def test_parameter_counts_are_wav2lip_and_the_paper_student():
    teacher_params = sum(p.numel() for p in wav2lip_teacher().parameters())
    student_params = sum(p.numel() for p in student().parameters())
    assert round(teacher_params / 1e6, 2) == 36.30
    assert round(student_params / 1e6, 3) == 1.258
    assert teacher_params / student_params >= 28


@pytest.mark.parametrize("ours,spec", [(wav2lip_teacher, WAV2LIP), (student, NOTA_STUDENT)],
                         ids=["teacher", "student"])
def test_state_dict_keys_and_shapes_are_the_official_ones(ours, spec):
    assert _shapes(ours()) == _shapes(OfficialGenerator(spec))


def test_syncnet_keys_and_shapes_are_the_official_ones():
    assert _shapes(SyncNet()) == _shapes(OfficialSyncNet())


def test_student_widths_are_a_quarter_of_the_teacher():
    assert GeneratorWidths.scaled(0.25) == STUDENT_WIDTHS
    assert STUDENT_WIDTHS.to_dict() == {"face": [4, 8, 16, 32, 64, 128, 128], "audio": [8, 16, 32, 64, 128, 128],
                                        "decoder": [128, 128, 128, 96, 64, 32, 16], "output": 8}
    assert GeneratorWidths.scaled(1.0) == TEACHER_WIDTHS
    half = student(0.5)
    assert half.widths == GeneratorWidths.scaled(0.5)
    assert _shapes(student(half.widths.to_dict())) == _shapes(half) == _shapes(build_generator(half.config))


@pytest.mark.parametrize("bad", [{"face": [4] * 6, "audio": [8] * 6, "decoder": [8] * 7, "output": 8},
                                 {"face": [4] * 7, "audio": [8] * 6, "decoder": [8] * 7, "output": 0},
                                 {"face": [4] * 7, "audio": [8] * 6, "decoder": [8] * 7},
                                 {"face": [4] * 7, "audio": [8.5] * 6, "decoder": [8] * 7, "output": 8}])
def test_invalid_widths_are_refused(bad):
    with pytest.raises(ValueError, match="widths"):
        student(bad)


def test_teacher_config_cannot_carry_other_widths():
    with pytest.raises(ValueError, match="fixed widths"):
        build_generator({"architecture": "wav2lip", "widths": STUDENT_WIDTHS.to_dict()})
    with pytest.raises(ValueError, match="unknown generator architecture"):
        build_generator({"architecture": "wav2lip_gan"})


# ---- same behaviour as the official code, through the checkpoint formats users bring ----

def _official_file(state, prefix=""):
    """Wav2Lip's own checkpoint layout."""
    params = list(range(sum(1 for k in state if not k.endswith(("running_mean", "running_var", "tracked")))))
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.999), "eps": 1e-8,
                                                "weight_decay": 0, "amsgrad": False, "params": params}]}
    return {"state_dict": {prefix + k: v for k, v in state.items()}, "optimizer": optimizer,
            "global_step": 253000, "global_epoch": 170}


@pytest.mark.parametrize("prefix", ["", "module."], ids=["plain-keys", "dataparallel-keys"])
def test_official_wav2lip_file_loads_and_matches_official_outputs(tmp_path, official_teacher, prefix):
    path = tmp_path / "wav2lip.pth"
    torch.save(_official_file(official_teacher.state_dict(), prefix), path)
    model = load_generator(path)
    assert isinstance(model, Wav2LipGenerator) and model.architecture == "wav2lip" and not model.training
    assert model.checkpoint_info["format"] == "wav2lip-official"
    assert model.checkpoint_info["metadata"] == {"global_step": 253000, "global_epoch": 170}
    mel, face = _inputs()
    with torch.no_grad():
        expected, actual = official_teacher(mel, face), model(mel, face)
    assert expected.std() > 0.01  # the randomised network is not saturated
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def test_nota_plain_state_dicts_load_for_teacher_and_student(tmp_path, official_teacher, official_student):
    mel, face = _inputs(frames=5)  # 5-D training input as well
    for name, reference, architecture in (("lrs3-wav2lip.pth", official_teacher, "wav2lip"),
                                          ("lrs3-nota-wav2lip.pth", official_student, "student")):
        torch.save(reference.state_dict(), tmp_path / name)
        model = load_generator(tmp_path / name)
        assert model.architecture == architecture and model.checkpoint_info["format"] == "state-dict"
        with torch.no_grad():
            expected, actual = reference(mel, face), model(mel, face)
        assert actual.shape == (2, 3, 5, 96, 96)
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)
    assert load_generator(tmp_path / "lrs3-nota-wav2lip.pth").widths == STUDENT_WIDTHS


def test_official_syncnet_file_loads_and_matches_official_embeddings(tmp_path):
    reference = _randomise(OfficialSyncNet(), seed=3)
    torch.save(_official_file(reference.state_dict(), "module."), tmp_path / "lipsync_expert.pth")
    model = load_syncnet(tmp_path / "lipsync_expert.pth")
    assert isinstance(model, SyncNet) and not model.training
    generator = torch.Generator().manual_seed(4)
    mel, face = torch.randn(3, 1, 80, 16, generator=generator), torch.rand(3, 15, 48, 96, generator=generator)
    with torch.no_grad():
        expected, actual = reference(mel, face), model(mel, face)
    for a, e in zip(actual, expected):
        assert a.shape == (3, 512)
        torch.testing.assert_close(a, e, rtol=0, atol=1e-6)
        torch.testing.assert_close(a.norm(dim=1), torch.ones(3))


def test_files_without_batchnorm_counters_still_load(tmp_path, official_student):
    state = {k: v for k, v in official_student.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    assert load_generator(tmp_path / "old.pth").architecture == "student"


# ---- LightLip's own format ----

@pytest.mark.parametrize("widths", [0.5, {"face": [3, 5, 7, 9, 11, 13, 6], "audio": [5, 6, 7, 8, 9, 10],
                                          "decoder": [12, 11, 10, 9, 8, 7, 6], "output": 5}],
                         ids=["half", "odd"])
def test_project_format_round_trips_any_student_width(tmp_path, widths):
    model = _randomise(student(widths), seed=5)
    path = save_generator(model, tmp_path / "sub" / "student.pth", teacher="lrs3-wav2lip.pth", step=1200,
                          source=tmp_path / "data", losses={"l1": 0.03})
    assert path == tmp_path / "sub" / "student.pth"
    loaded = load_generator(path)
    assert loaded.config == model.config and not loaded.training
    info = loaded.checkpoint_info
    assert info["format"] == "lightlip" and info["metadata"]["step"] == 1200
    assert info["metadata"]["source"] == str(tmp_path / "data") and info["metadata"]["losses"] == {"l1": 0.03}
    assert info["metadata"]["saved_by"]["torch"] == str(torch.__version__)
    mel, face = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel, face), model(mel, face), rtol=0, atol=0)
    assert os.listdir(path.parent) == ["student.pth"]  # no temporary left behind


def test_project_format_for_teacher_and_syncnet(tmp_path, official_teacher):
    teacher = load_generator(save_generator(_randomise(wav2lip_teacher(), 6), tmp_path / "t.pth"))
    assert teacher.architecture == "wav2lip" and teacher.checkpoint_info["format"] == "lightlip"
    expert = _randomise(SyncNet(), seed=7)
    loaded = load_syncnet(save_syncnet(expert, tmp_path / "s.pth", trained_on="lrs2"))
    assert loaded.checkpoint_info["metadata"]["trained_on"] == "lrs2"
    mel, face = torch.randn(2, 1, 80, 16), torch.rand(2, 15, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel, face), expert(mel, face), rtol=0, atol=0)


def test_narrow_syncnet_round_trips_at_its_width(tmp_path):
    expert = _randomise(SyncNet(width=0.25), seed=8)
    assert expert.face_encoder[0].conv_block[0].out_channels == 8  # Wav2Lip's 32 at a quarter
    loaded = load_syncnet(save_syncnet(expert, tmp_path / "narrow.pth"))
    assert loaded.config == {"architecture": "syncnet_color", "width": 0.25}
    mel, face = torch.randn(2, 1, 80, 16), torch.rand(2, 15, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel, face), expert(mel, face), rtol=0, atol=0)
    # A full-width state dict does not fit a narrow file's config, and the error says so.
    payload = torch.load(tmp_path / "narrow.pth", weights_only=True)
    payload["state_dict"] = SyncNet().state_dict()
    torch.save(payload, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="mixed.pth: .*does not match"):
        load_syncnet(tmp_path / "mixed.pth")


def test_mouth_shape_net_round_trips_and_refuses_other_files(tmp_path):
    reader = _randomise(MouthShapeNet(dimensions=3, width=8), seed=9)
    path = save_mouth_shape_net(reader, tmp_path / "shape.pt", shapes=["jaw", "spread", "round"])
    loaded = load_mouth_shape_net(path)
    assert loaded.config == {"architecture": "mouth_shape_net", "dimensions": 3, "width": 8}
    assert loaded.checkpoint_info["metadata"]["shapes"] == ["jaw", "spread", "round"] and not loaded.training
    lower_faces = torch.rand(4, 3, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lower_faces), reader(lower_faces), rtol=0, atol=0)
    save_generator(student(), tmp_path / "student.pth")
    with pytest.raises(CheckpointError, match="student.pth: holds a generator, not a mouth_shape_net"):
        load_mouth_shape_net(tmp_path / "student.pth")
    torch.save(reader.state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="plain.pth: not a LightLip mouth-shape net"):
        load_mouth_shape_net(tmp_path / "plain.pth")
    with pytest.raises(TypeError, match="MouthShapeNet"):
        save_mouth_shape_net(student(), tmp_path / "x.pth")


def test_wrapped_models_save_their_inner_network(tmp_path):
    model = _randomise(student(), seed=8)
    save_generator(nn.DataParallel(model), tmp_path / "dp.pth")
    loaded = load_generator(tmp_path / "dp.pth")
    assert set(loaded.state_dict()) == set(model.state_dict())


def test_save_refuses_wrong_models_and_unplain_metadata(tmp_path):
    with pytest.raises(TypeError, match="Wav2LipGenerator"):
        save_generator(SyncNet(), tmp_path / "x.pth")
    with pytest.raises(TypeError, match="SyncNet"):
        save_syncnet(student(), tmp_path / "x.pth")
    with pytest.raises(TypeError, match="metadata.optimizer"):
        save_generator(student(), tmp_path / "x.pth", optimizer=object())
    assert not (tmp_path / "x.pth").exists()


# ---- clear errors ----

def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.pth: no such checkpoint file"):
        load_generator(tmp_path / "nothing.pth")
    (tmp_path / "garbage.pth").write_bytes(os.urandom(2000))
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable PyTorch checkpoint"):
        load_generator(tmp_path / "garbage.pth")
    save_generator(student(), tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth: not a readable PyTorch checkpoint"):
        load_syncnet(tmp_path / "truncated.pth")


def test_unsafe_pickles_are_not_executed(tmp_path):
    torch.save({"state_dict": {}, "config": GeneratorWidths.scaled(0.5)}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="pickled.pth: .*objects other than tensors"):
        load_generator(tmp_path / "pickled.pth")


def test_mismatched_generator_names_keys_and_shapes(tmp_path, official_student):
    state = dict(official_student.state_dict())
    state["face_encoder_blocks.0.0.conv_block.0.weight"] = torch.zeros(4, 6, 5, 5)
    del state["output_block.1.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "edited.pth")
    with pytest.raises(CheckpointError) as error:
        load_generator(tmp_path / "edited.pth")
    message = str(error.value)
    assert "edited.pth" in message and "student generator" in message and "\n" not in message
    assert "1 missing keys: output_block.1.bias" in message
    assert "1 unexpected keys: extra.weight" in message
    assert "face_encoder_blocks.0.0.conv_block.0.weight (4, 6, 5, 5) in file vs (4, 6, 7, 7)" in message


def test_teacher_file_with_a_missing_layer_is_reported_against_the_teacher(tmp_path, official_teacher):
    state = {k: v for k, v in official_teacher.state_dict().items() if not k.startswith("audio_encoder.12.")}
    torch.save({"state_dict": state}, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"cut.pth: wav2lip-official checkpoint does not match the wav2lip "
                                              r"generator: 6 missing keys: audio_encoder\.12\.conv_block"):
        load_generator(tmp_path / "cut.pth")


def test_loading_the_wrong_network_is_refused(tmp_path):
    save_syncnet(SyncNet(), tmp_path / "expert.pth")
    save_generator(student(), tmp_path / "student.pth")
    torch.save(SyncNet().state_dict(), tmp_path / "expert_plain.pth")
    with pytest.raises(CheckpointError, match="expert.pth: holds a syncnet, not a generator"):
        load_generator(tmp_path / "expert.pth")
    with pytest.raises(CheckpointError, match="student.pth: holds a generator, not a syncnet"):
        load_syncnet(tmp_path / "student.pth")
    with pytest.raises(CheckpointError, match="expert_plain.pth: state-dict checkpoint does not match the "
                                              "wav2lip generator: .*missing keys"):
        load_generator(tmp_path / "expert_plain.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth: not a generator checkpoint .*found list"):
        load_generator(tmp_path / "list.pth")


def test_project_files_with_bad_config_or_newer_version_are_refused(tmp_path):
    payload = torch.load(save_generator(student(), tmp_path / "s.pth"), weights_only=True)
    payload["config"] = {"architecture": "student", "widths": {"face": [1, 2]}}
    torch.save(payload, tmp_path / "badconfig.pth")
    with pytest.raises(CheckpointError, match="badconfig.pth: invalid generator config"):
        load_generator(tmp_path / "badconfig.pth")
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pth")
    with pytest.raises(CheckpointError, match="future.pth: written by a newer LightLip"):
        load_generator(tmp_path / "future.pth")


# ---- shapes and features ----

@pytest.mark.parametrize("factory", [wav2lip_teacher, student], ids=["teacher", "student"])
def test_sequence_input_equals_frame_by_frame(factory):
    model = _randomise(factory(), seed=9)
    mel, face = _inputs(batch=2, frames=3)
    with torch.no_grad():
        sequence = model(mel, face)
        frames = [model(mel[:, t], face[:, :, t]) for t in range(3)]
    assert sequence.shape == (2, 3, 3, 96, 96)
    for t, frame in enumerate(frames):
        assert frame.shape == (2, 3, 96, 96)
        torch.testing.assert_close(sequence[:, :, t], frame, rtol=0, atol=1e-6)
    assert 0 <= float(sequence.min()) and float(sequence.max()) <= 1


@pytest.mark.parametrize("factory", [wav2lip_teacher, student], ids=["teacher", "student"])
def test_decoder_features_follow_each_skip_concatenation(factory):
    model = _randomise(factory(), seed=10)
    mel, face = _inputs(batch=2)
    with torch.no_grad():
        out, features = model.forward_with_features(mel, face)
        torch.testing.assert_close(model.output_block(features[-1]), out, rtol=0, atol=0)
    widths = model.widths
    expected = [(2, widths.decoder[i] + widths.face[6 - i], size, size)
                for i, size in enumerate((1, 3, 6, 12, 24, 48, 96))]
    assert [tuple(f.shape) for f in features] == expected


def test_sequence_features_are_time_major_on_the_batch_axis():
    model = _randomise(student(), seed=11)
    mel, face = _inputs(batch=2, frames=3)
    with torch.no_grad():
        _, features = model.forward_with_features(mel, face)
        _, second_frame = model.forward_with_features(mel[:, 1], face[:, :, 1])
    torch.testing.assert_close(features[-1][2:4], second_frame[-1], rtol=0, atol=1e-6)


def test_syncnet_input_and_loss():
    frames = torch.rand(2, 3, 5, 96, 96)
    stacked = syncnet_face_input(frames)
    assert stacked.shape == (2, 15, 48, 96)
    torch.testing.assert_close(stacked[:, 6:9], frames[:, :, 2, 48:])
    with pytest.raises(ValueError, match="5"):
        syncnet_face_input(torch.rand(2, 3, 4, 96, 96))
    audio = F.normalize(torch.rand(4, 512), dim=1)
    video = F.normalize(torch.rand(4, 512), dim=1)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0])
    cosine = (audio * video).sum(1)
    manual = -(target * cosine.log() + (1 - target) * (1 - cosine).log()).mean()
    torch.testing.assert_close(sync_loss(audio, video, target), manual)
    # Under autocast with half-precision embeddings the loss is still computed in float32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = sync_loss(audio.bfloat16(), video.bfloat16(), target)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, manual, atol=2e-2, rtol=0)


def test_matching_scores_each_window_against_its_own_candidates():
    model = SyncNet(0.25).eval()
    mel, candidates = torch.rand(3, 1, 80, 16), torch.rand(3, 4, 15, 48, 96)
    with torch.no_grad():
        similarities = matching_similarities(model, mel, candidates)
        audio, face = model(mel[2:3], candidates[2, 1:2])
    assert similarities.shape == (3, 4)
    torch.testing.assert_close(similarities[2, 1], F.cosine_similarity(audio, face)[0])
    # Cross-entropy of the first candidate, sharper at a lower temperature.
    scores = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.9, 0.2]])
    manual = -torch.log_softmax(scores / 0.1, dim=1)[:, 0].mean()
    torch.testing.assert_close(matching_loss(scores, 0.1), manual)
    assert matching_loss(scores[:1], 0.05) < matching_loss(scores[:1], 0.1) < matching_loss(scores[1:], 0.1)


# ---- profile ----

def test_profile_reproduces_the_paper_macs():
    teacher, small = measure(wav2lip_teacher()), measure(student())
    assert round(teacher.macs_output_positions / 1e9, 2) == 6.20
    assert round(small.macs_output_positions / 1e9, 3) == 0.215
    assert round(teacher.macs_input_positions / 1e9, 2) == 3.97
    assert round(small.macs_input_positions / 1e9, 3) == 0.075
    assert teacher.parameters / small.parameters >= 28
    assert teacher.macs_output_positions / small.macs_output_positions >= 28


def test_profile_cli_labels_conventions_and_accepts_widths(capsys):
    assert profile_main(["--student-widths", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "over output positions" in text and "over input positions" in text
    assert "Conv2d and ConvTranspose2d" in text and "student (0.5 widths)" in text
    assert profile_main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in report["models"]] == ["wav2lip teacher", "student (paper, 1/4 widths)"]
    with pytest.raises(SystemExit) as exit_info:
        profile_main(["--student-widths", "3"])
    assert exit_info.value.code == 2
    assert "neither a width fraction" in capsys.readouterr().err
