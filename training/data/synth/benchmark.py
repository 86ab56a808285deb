"""The synthetic talking-face benchmark: plan, render and write clips in the Wav2Lip layout with truth.

Identities are real face photos; speech is espeak-ng or Festival (training.data.synth.speech); each clip's
mouth follows the phonemes of its own audio (training.data.synth.visemes) and is rendered into the photo
(training.data.synth.render). What the benchmark measures honestly: whether a model maps speech to the
*rendered* mouth motion (jaw, spread, rounding) of unseen faces and unseen sentences. It does not measure
realism of teeth, tongue or skin, nor real-world speech: for those, use recordings (``lightlip-data
preprocess``).
"""
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import soundfile
from lightlip_ros.atomic_files import atomic_write_json
from lightlip_ros.audio import FPS, SAMPLE_RATE
from lightlip_ros.face import Box, FaceDetector, crop_region

from ..jobs import run_jobs
from ..layout import AUDIO_NAME, SPLITS, TRUTH_NAME, DataError, frame_path, write_filelist
from .render import MouthGeometry, MouthRenderer, find_portrait_face
from .sentences import make_sentences
from .speech import ACCENTS, FESTIVAL, VARIANTS, pad_utterance, synthesize
from .visemes import SHAPE_NAMES, frame_track

FORMAT_VERSION = 2
# Festival voices a clip can be spoken by, and how often each is drawn (the HMM voice takes ~10 s per
# utterance on one core, the diphone voices 0.2 s).
FESTIVAL_VOICE_WEIGHTS = {"kal_diphone": 0.4, "ked_diphone": 0.4, "cmu_us_slt_arctic_hts": 0.2}
MANIFEST_NAME = "synth.json"
# A public-domain photo (NASA, via scikit-image's data.astronaut()) that is a training identity of every
# benchmark; the node's bundled face (lightlip_ros/assets/face.jpg) is not, so it stays a new face.
ASTRONAUT = Path(__file__).resolve().parent / "astronaut.jpg"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Rendering happens at this multiple of the crop size, then the crop is area-downsampled (anti-aliasing).
_RENDER_OVERSAMPLE = 2


@dataclass(frozen=True)
class SynthConfig:
    """What ``lightlip-data synth`` makes. identities/sentences: training identities and sentences;
    heldout_identities/heldout_sentences: per held-out split (val and test each)."""

    portraits: tuple = ()
    include_astronaut: bool = True
    identities: int = 0  # 0: every identity that is not held out
    heldout_identities: int = -1  # -1: split the identities left over evenly between val and test
    sentences: int = 40
    heldout_sentences: int = 10
    crop_size: int = 96
    seed: int = 0
    noise_std: float = 1e-3
    jpeg_quality: int = 95
    festival_share: float = 0.5  # share of clips spoken by a Festival voice; the rest by the identity's espeak-ng voice

    def plan_key(self):
        """The settings that decide the content; a resumed run must use the same."""
        key = asdict(self)
        key["portraits"] = [str(Path(p).resolve()) for p in self.portraits]
        return key


@dataclass
class Identity:
    name: str
    source: str
    split: str
    box: tuple
    mouth: dict
    voice: str
    rate: int
    pitch: int
    articulation: float


@dataclass
class ClipPlan:
    clip: str
    split: str
    identity: str
    sentence: str
    seed: list = field(default_factory=list)
    voice: str = ""  # empty: the identity's own voice


def _portrait_files(config):
    files = [ASTRONAUT] if config.include_astronaut else []
    for folder in config.portraits:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such portrait folder")
        files.extend(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not files:
        raise DataError("no portraits: give --portraits FOLDER or keep the astronaut")
    return files


def _identity_name(path, taken):
    name = path.stem.replace(" ", "_")
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def plan_benchmark(config, log=print):
    """(identities, sentences per split, clip plans) for a config; deterministic given config.seed."""
    detector = FaceDetector()
    found = []
    taken = set()
    for path in _portrait_files(config):
        image = cv2.imread(str(path))
        if image is None:
            log(f"skipped {path}: not a readable image")
            continue
        face = find_portrait_face(image, detector)
        if face is None:
            log(f"skipped {path}: no face found")
            continue
        name = _identity_name(path, taken)
        taken.add(name)
        found.append((name, path, face))
    rng = np.random.default_rng([config.seed, 0x1D])
    order = rng.permutation(len(found))
    count = len(found)
    n_heldout = config.heldout_identities
    if n_heldout < 0:
        n_heldout = (count - config.identities) // 2 if config.identities else max(0, (count - 1) // 6)
    n_train = config.identities or count - 2 * n_heldout
    if n_train < 1 or n_train + 2 * n_heldout > count:
        raise DataError(f"{count} usable portraits cannot give {n_train} training identities and "
                        f"{n_heldout} held-out identities for each of val and test")
    splits = ["train"] * n_train + ["val"] * n_heldout + ["test"] * n_heldout
    identities = {}
    for split, index in zip(splits, order):
        name, path, (box, mouth) = found[index]
        voice_rng = np.random.default_rng([config.seed, 0xF0, index])
        identities[name] = Identity(
            name=name, source=str(path), split=split, box=tuple(int(v) for v in box), mouth=mouth.to_dict(),
            voice=f"{ACCENTS[voice_rng.integers(len(ACCENTS))]}+{VARIANTS[voice_rng.integers(len(VARIANTS))]}",
            rate=int(voice_rng.integers(135, 186)), pitch=int(voice_rng.integers(30, 71)),
            articulation=round(float(voice_rng.uniform(0.8, 1.1)), 3))
    if n_heldout == 0:
        log("note: too few portraits to hold out identities: val and test reuse the training identities "
            "(their sentences are still held out)")
    texts = make_sentences(config.sentences + 2 * config.heldout_sentences, config.seed)
    sentences = {"train": texts[:config.sentences],
                 "val": texts[config.sentences:config.sentences + config.heldout_sentences],
                 "test": texts[config.sentences + config.heldout_sentences:]}
    clips = []
    festival_voices = list(FESTIVAL_VOICE_WEIGHTS)
    festival_weights = np.array(list(FESTIVAL_VOICE_WEIGHTS.values()))
    festival_weights = festival_weights / festival_weights.sum()
    for split in SPLITS:
        speakers = [i for i in identities.values() if i.split == (split if n_heldout else "train")]
        for identity in sorted(speakers, key=lambda i: i.name):
            for number, text in enumerate(sentences[split]):
                clip = f"{split}/{identity.name}/s{number:03d}"
                voice_rng = np.random.default_rng([config.seed, 0xC1, len(clips)])
                voice = ""
                if voice_rng.random() < config.festival_share:
                    name = festival_voices[voice_rng.choice(len(festival_voices), p=festival_weights)]
                    voice = f"{FESTIVAL}:{name}"
                clips.append(ClipPlan(clip, split, identity.name, text, [config.seed, len(clips)], voice))
    return identities, sentences, clips, n_heldout > 0


def _smooth_noise(rng, n_frames, sigma_frames):
    """Zero-mean random motion in [-1, 1], low-pass filtered like a head's slow drift."""
    raw = rng.normal(size=n_frames + 6 * int(sigma_frames))
    smooth = cv2.GaussianBlur(raw.reshape(1, -1), (0, 1), sigma_frames).ravel()[3 * int(sigma_frames):][:n_frames]
    return smooth / max(1e-6, float(np.abs(smooth).max()))


def _transform_box(matrix, box, scale):
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], np.float64)
    points = corners @ matrix.T / scale
    return [round(float(points[:, 0].min()), 2), round(float(points[:, 1].min()), 2),
            round(float(points[:, 0].max()), 2), round(float(points[:, 1].max()), 2)]


class _ClipRenderer:
    """Renders one clip: portrait at working scale, per-clip augmentation, per-frame head motion."""

    def __init__(self, identity, crop_size, rng):
        image = cv2.imread(identity.source)
        if image is None:
            raise DataError(f"{identity.source}: cannot read portrait")
        box = identity.box
        x1, y1, x2, y2 = crop_region(Box(*box), image.shape)
        out_size = crop_size * _RENDER_OVERSAMPLE
        factor = out_size / max(x2 - x1, y2 - y1)
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        work = cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)),
                          interpolation=interpolation)
        mouth = MouthGeometry(**identity.mouth).scaled(factor)
        self.renderer = MouthRenderer(work, mouth, box[3] * factor, teeth_tint=rng.uniform(0.85, 1.0))
        self.crop_size = crop_size
        self.out_size = out_size
        # Per-clip framing jitter (how a detector box would wander between recordings).
        width, height = (x2 - x1) * factor, (y2 - y1) * factor
        jitter_scale = rng.uniform(0.95, 1.08)
        self.center = np.array([(x1 + x2) / 2 * factor + rng.uniform(-0.04, 0.04) * width,
                                (y1 + y2) / 2 * factor + rng.uniform(-0.04, 0.04) * height])
        self.size = np.array([width, height]) * jitter_scale
        self.mirror = bool(rng.random() < 0.5)
        self.contrast = rng.uniform(0.85, 1.15)
        self.brightness = rng.uniform(-15, 15)
        self.gains = rng.uniform(0.93, 1.07, size=3)
        self.rng = rng

    def head_motion(self, n_frames):
        """(n_frames, 4): dx, dy (fraction of the crop), rotation (degrees), scale change."""
        amplitude = np.array([0.02, 0.02, 2.5, 0.015]) * self.rng.uniform(0.3, 1.0, size=4)
        return np.stack([_smooth_noise(self.rng, n_frames, 6.0) for _ in range(4)], axis=1) * amplitude

    def matrix(self, motion):
        """Affine map from working-image pixels to the oversampled crop."""
        dx, dy, angle, scale = motion
        rotation = cv2.getRotationMatrix2D((float(self.center[0]), float(self.center[1])), float(angle),
                                           1.0 + float(scale))
        rotation = np.vstack([rotation, [0, 0, 1]])
        sx, sy = self.out_size / self.size
        crop = np.array([[sx, 0, -(self.center[0] - self.size[0] / 2) * sx + dx * self.out_size],
                         [0, sy, -(self.center[1] - self.size[1] / 2) * sy + dy * self.out_size],
                         [0, 0, 1]])
        if self.mirror:
            crop = np.array([[-1, 0, self.out_size], [0, 1, 0], [0, 0, 1]]) @ crop
        return (crop @ rotation)[:2]

    def frame(self, shape, motion):
        image, mouth = self.renderer.render(*shape)
        matrix = self.matrix(motion)
        big = cv2.warpAffine(image, matrix, (self.out_size, self.out_size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        crop = cv2.resize(big, (self.crop_size, self.crop_size), interpolation=cv2.INTER_AREA)
        graded = (crop.astype(np.float32) - 128.0) * self.contrast + 128.0 + self.brightness
        crop = np.clip(graded * self.gains + 0.5, 0, 255).astype(np.uint8)
        scale = _RENDER_OVERSAMPLE
        lips = _transform_box(matrix, mouth.lips, scale)
        opening = _transform_box(matrix, mouth.opening, scale)
        return crop, lips, opening


def clip_is_complete(clip_dir):
    truth = Path(clip_dir) / TRUTH_NAME
    if not truth.is_file():
        return False
    try:
        return json.loads(truth.read_text()).get("format_version") == FORMAT_VERSION
    except (OSError, ValueError):
        return False


def render_clip(root, plan, identity, config):
    """Write one clip (frames, audio.wav, then truth.json last, so a crash never leaves a 'complete' clip)."""
    clip_dir = Path(root) / plan.clip
    if clip_dir.exists():
        shutil.rmtree(clip_dir)
    clip_dir.mkdir(parents=True)
    rng = np.random.default_rng(plan.seed)
    rate = int(np.clip(identity.rate + rng.integers(-10, 11), 80, 450))
    pitch = int(np.clip(identity.pitch + rng.integers(-5, 6), 0, 100))
    voice = plan.voice or identity.voice
    speech, phonemes = synthesize(plan.sentence, voice, rate, pitch)
    wav, phonemes = pad_utterance(speech, phonemes, rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4),
                                  config.noise_std, rng)
    soundfile.write(str(clip_dir / AUDIO_NAME), wav, SAMPLE_RATE, subtype="PCM_16")
    n_frames = int(len(wav) * FPS // SAMPLE_RATE)
    shapes = frame_track(phonemes, n_frames, FPS)
    gain = identity.articulation * rng.uniform(0.95, 1.05)
    shapes[:, 0] = np.clip(shapes[:, 0] * gain, 0.0, 1.0)
    renderer = _ClipRenderer(identity, config.crop_size, rng)
    motion = renderer.head_motion(n_frames)
    lips_boxes, opening_boxes = [], []
    for index in range(n_frames):
        crop, lips, opening = renderer.frame(shapes[index], motion[index])
        if not cv2.imwrite(str(frame_path(clip_dir, index)), crop,
                           [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]):
            raise DataError(f"cannot write frames under {clip_dir}")
        lips_boxes.append(lips)
        opening_boxes.append(opening)
    truth = {
        "format_version": FORMAT_VERSION, "clip": plan.clip, "split": plan.split, "identity": identity.name,
        "text": plan.sentence, "voice": voice, "rate": rate, "pitch": pitch, "fps": FPS,
        "sample_rate": SAMPLE_RATE, "n_frames": n_frames, "crop_size": config.crop_size,
        "mirrored": renderer.mirror,
        "phonemes": [[p.name, round(p.start, 4), round(p.end, 4)] for p in phonemes],
        **{name: [round(float(v), 4) for v in shapes[:, k]] for k, name in enumerate(SHAPE_NAMES)},
        "lips_box": lips_boxes, "opening_box": opening_boxes,
    }
    atomic_write_json(clip_dir / TRUTH_NAME, truth)
    return n_frames


def _render_job(job):
    root, plan, identity, config = job
    cv2.setNumThreads(1)
    try:
        return plan.clip, render_clip(root, plan, identity, config), None
    except DataError as error:
        return plan.clip, 0, str(error)


def _init_worker():
    cv2.setNumThreads(1)


def generate_benchmark(root, config, workers=1, log=print, progress=True):
    """Make (or resume) the benchmark under root; returns a summary dict. Finished clips are kept."""
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        if previous.get("config") != config.plan_key() or previous.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{root} holds a benchmark made with other settings: use another folder "
                            "or delete it")
    identities, sentences, clips, heldout = plan_benchmark(config, log=log)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest_path, {
        "format_version": FORMAT_VERSION, "generator": "lightlip-data synth", "config": config.plan_key(),
        "fps": FPS, "sample_rate": SAMPLE_RATE, "identities_held_out": heldout,
        "identities": {name: asdict(identity) for name, identity in identities.items()},
        "sentences": sentences})
    todo = [c for c in clips if not clip_is_complete(root / c.clip)]
    log(f"{len(clips)} clips planned, {len(clips) - len(todo)} already done, {len(todo)} to render "
        f"with {workers} worker(s)")
    jobs = [(str(root), plan, identities[plan.identity], config) for plan in todo]
    failures = {}
    frames = 0
    for clip, n, error in run_jobs(_render_job, jobs, workers, desc="synth", unit="clip", progress=progress,
                                   initializer=_init_worker):
        frames += n
        if error:
            failures[clip] = error
    for split in SPLITS:
        write_filelist(root, split, [c.clip for c in clips if c.split == split and c.clip not in failures])
    for clip, error in failures.items():
        log(f"failed {clip}: {error}")
    counts = {split: sum(1 for c in clips if c.split == split and c.clip not in failures) for split in SPLITS}
    return {"clips": counts, "rendered": len(todo) - len(failures), "frames_rendered": frames,
            "failed": len(failures), "identities": {s: sum(1 for i in identities.values() if i.split == s)
                                                    for s in SPLITS},
            "sentences": {s: len(v) for s, v in sentences.items()}, "identities_held_out": heldout}
