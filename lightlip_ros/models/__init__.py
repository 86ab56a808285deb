"""LightLip model zoo: the Wav2Lip teacher, the paper's student family, the SyncNet expert, checkpoints."""
from .blocks import ConvBlock, ConvTransposeBlock
from .checkpoint import (CheckpointError, load_generator, load_syncnet, save_generator, save_syncnet, unwrap_model,
                         weight_fingerprint)
from .generator import (STUDENT, STUDENT_WIDTHS, TEACHER, TEACHER_WIDTHS, GeneratorWidths, Wav2LipGenerator,
                        build_generator, student, wav2lip_teacher)
from .syncnet import SyncNet, sync_loss, syncnet_face_input

__all__ = [
    "CheckpointError", "ConvBlock", "ConvTransposeBlock", "GeneratorWidths", "STUDENT", "STUDENT_WIDTHS",
    "SyncNet", "TEACHER", "TEACHER_WIDTHS", "Wav2LipGenerator", "build_generator", "load_generator",
    "load_syncnet", "save_generator", "save_syncnet", "student", "sync_loss", "syncnet_face_input",
    "unwrap_model", "wav2lip_teacher", "weight_fingerprint",
]
