"""`lightlip-train`: train the lip-sync expert, the Wav2Lip teacher and the distilled student.

    lightlip-train syncnet --data data/synth --out runs/syncnet
    lightlip-train teacher --data data/synth --expert runs/syncnet/model.pt --out runs/teacher
    lightlip-train distill --data data/synth --teacher runs/teacher/model.pt --expert runs/syncnet/model.pt \
        --out runs/student
    lightlip-train student ...        # the same student recipe without a teacher (baseline)
    lightlip-train shapenet --data data/synth --out runs/shapenet   # the reader for loss.frame_articulation

Every run starts from `training/train/configs/<recipe>.yaml`; `--config FILE` and `--set section.key=value`
override it, and named flags override both. The effective config is saved as <out>/config.yaml.
Multi-GPU / multi-node: `torchrun --nproc_per_node N -m training.train.cli distill ...`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightlip_ros.errors import run_command

from .config import ConfigError, build_config, merge, parse_override, set_key

RECIPES = {
    "syncnet": "the lip-sync expert (SyncNet, BCE on cosine similarity of in-sync/off-sync pairs)",
    "teacher": "the Wav2Lip generator: L1 + expert sync loss, no GAN; --init fine-tunes any loadable file",
    "distill": "the student from a teacher: L1, output and feature distillation, expert sync loss; no GAN",
    "student": "the student with the distill recipe minus distillation (the from-scratch baseline)",
    "shapenet": "the mouth-shape reader (jaw, spread, round from a face's lower half) for loss.frame_articulation",
}
# Named flags: (flag, config key, type, help, recipes that take it).
_FLAGS = [
    ("--data", "data.root", str, "dataset root in the Wav2Lip LRS2 layout (e.g. data/synth)", None),
    ("--steps", "train.steps", int, "total optimizer steps", None),
    ("--batch-size", "train.batch_size", int, "samples per batch and per process", None),
    ("--lr", "train.lr", float, "base learning rate", None),
    ("--seed", "train.seed", int, "random seed", None),
    ("--device", "train.device", str, "auto, cpu, cuda or cuda:N (torchrun picks cuda:LOCAL_RANK)", None),
    ("--threads", "train.threads", int, "CPU threads for torch (torch.set_num_threads)", None),
    ("--num-workers", "train.num_workers", int, "DataLoader worker processes", None),
    ("--val-every", "train.val_every", int, "validate and checkpoint every N steps", None),
    ("--init", "model.init", str, "start from this checkpoint (official Wav2Lip/Nota or LightLip files)", None),
    ("--expert", "expert.checkpoint", str, "lip-sync expert checkpoint for the sync loss",
     ("teacher", "distill", "student")),
    ("--shape-net", "shape_net.checkpoint", str, "mouth-shape net checkpoint for loss.frame_articulation",
     ("teacher", "distill", "student")),
    ("--teacher", "teacher.checkpoint", str, "teacher generator checkpoint (any format load_generator reads)",
     ("distill",)),
    ("--widths", "model.widths", float, "student widths as a fraction of the teacher's (0.25 = the paper's)",
     ("distill", "student")),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightlip-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run `lightlip-train <command> --help` for each command's options.")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    for recipe, description in RECIPES.items():
        sub = commands.add_parser(recipe, help=description, description=description)
        sub.add_argument("--out", type=Path, help="run directory (checkpoints, TensorBoard, config.yaml, "
                                                  "model.pt); defaults to the resumed run's directory")
        sub.add_argument("--config", type=Path, help="YAML file overriding training/train/configs/%s.yaml" %
                         ("distill" if recipe == "student" else recipe))
        sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override one config key, e.g. --set loss.feature_distill=0.5 (repeatable)")
        sub.add_argument("--resume", type=Path, metavar="RUN_OR_CHECKPOINT",
                         help="continue a run (its directory or a checkpoint file) from its saved step with "
                              "its optimizer, scheduler and RNG state; flags given now override its config")
        sub.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
        for flag, key, kind, text, recipes in _FLAGS:
            if recipes is None or recipe in recipes:
                sub.add_argument(flag, dest=key, type=kind, help=f"{text} [{key}]")
    return parser


def _config_for(args) -> dict:
    recipe = args.command
    flags = {key: getattr(args, key) for _, key, _, _, recipes in _FLAGS
             if recipes is None or recipe in recipes}
    if args.no_progress:
        flags["train.progress"] = False
    if args.resume is not None:
        from .trainer import load_training_state

        config = load_training_state(args.resume)["config"]
        if args.config is not None:
            from .config import read_yaml

            config = merge(config, read_yaml(args.config))
        for text in args.overrides:
            config = merge(config, parse_override(text))
        for key, value in flags.items():
            if value is not None:
                config = set_key(config, key, value)
        return config
    config = build_config("distill" if recipe == "student" else recipe, args.config, args.overrides, flags)
    if recipe == "student":
        config = set_key(set_key(config, "recipe", "student"), "teacher.checkpoint", None)
    if recipe == "distill" and not config["teacher"]["checkpoint"]:
        raise ConfigError("distill needs a teacher: pass --teacher CHECKPOINT (or use `lightlip-train student`)")
    return config


def _run_dir(args) -> Path:
    if args.out is not None:
        return args.out
    if args.resume is not None:
        return args.resume if args.resume.is_dir() else args.resume.parent.parent
    raise ConfigError("--out RUN_DIR is required for a new run")


def _recipe_class(recipe: str):
    if recipe == "syncnet":
        from .syncnet_recipe import SyncNetRecipe

        return SyncNetRecipe
    if recipe == "shapenet":
        from .shape_recipe import MouthShapeRecipe

        return MouthShapeRecipe
    from .generator_recipe import GeneratorRecipe

    return GeneratorRecipe


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from .trainer import Trainer

    def train():
        config = _config_for(args)
        if config["recipe"] != args.command:
            raise ConfigError(f"the resumed run is a '{config['recipe']}' run: use `lightlip-train "
                              f"{config['recipe']} --resume ...`")
        trainer = Trainer(_recipe_class(args.command), config, _run_dir(args), resume=args.resume)
        summary = trainer.fit()
        if trainer.ctx.is_main:
            print(f"{args.command}: {summary['steps']} steps in {summary['wall_time_s']:.0f} s; "
                  f"best {trainer.recipe.monitor} {trainer.best:.4f}; model: {_run_dir(args) / 'model.pt'}")

    return run_command(f"lightlip-train {args.command}", train,
                       interrupted=f"interrupted; continue with --resume {_run_dir(args)}")


if __name__ == "__main__":
    sys.exit(main())
