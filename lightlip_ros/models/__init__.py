"""LightLip model zoo: the Wav2Lip teacher, the paper's student family, the SyncNet expert, the mouth-shape
reader of training, checkpoints."""
from .blocks import ConvBlock, ConvTransposeBlock
from .checkpoint import (CheckpointError, load_generator, load_mouth_shape_net, load_syncnet, save_generator,
                         save_mouth_shape_net, save_syncnet, unwrap_model, weight_fingerprint)
from .generator import (STUDENT, STUDENT_WIDTHS, TEACHER, TEACHER_WIDTHS, GeneratorWidths, Wav2LipGenerator,
                        build_generator, student, wav2lip_teacher)
from .mouth_shape import MouthShapeNet, lower_halves
from .syncnet import SyncNet, sync_loss, syncnet_face_input

__all__ = [
    "CheckpointError", "ConvBlock", "ConvTransposeBlock", "GeneratorWidths", "MouthShapeNet", "STUDENT",
    "STUDENT_WIDTHS", "SyncNet", "TEACHER", "TEACHER_WIDTHS", "Wav2LipGenerator", "build_generator",
    "load_generator", "load_mouth_shape_net", "load_syncnet", "lower_halves", "save_generator",
    "save_mouth_shape_net", "save_syncnet", "student", "sync_loss", "syncnet_face_input", "unwrap_model",
    "wav2lip_teacher", "weight_fingerprint",
]
