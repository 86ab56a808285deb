"""Pools `lightlip-data eval-speech` reports (speech.json of several runs, e.g. evaluate_speech and
evaluate_speech_more of one round) per model: clip-face pairs meeting every target, and the means of r
envelope, open std, open p95, opening in pauses and PSNR above the mouth over those pairs.

    .venv/bin/python scripts/experiments/speech_summary.py runs/round11/speech-sync0.3 runs/round11/speech-more-sync0.3
        [--exclude astronaut]   (faces left out by file stem; default: the astronaut, open-mouthed at rest)
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

FIGURES = ("r_envelope", "open_std", "open_p95", "open_silence", "psnr_above_mouth")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval-speech output folders (holding speech.json)")
    parser.add_argument("--exclude", nargs="*", default=["astronaut"], help="face file stems to leave out")
    args = parser.parse_args(argv)
    rows = defaultdict(list)
    for run in args.runs:
        try:
            report = json.loads((run / "speech.json").read_text())
        except (OSError, ValueError) as error:
            sys.exit(f"speech_summary: {run}: {error}")
        for row in report["rows"]:
            if Path(row["face"]).stem not in args.exclude:
                rows[row["model"]].append(row)
    print("| model | pairs meeting all targets | faces | mean " + " | mean ".join(FIGURES) + " |")
    print("|---|---|---|" + "---|" * len(FIGURES))
    for model, pairs in rows.items():
        faces = sorted({Path(row["face"]).stem for row in pairs})
        means = [np.mean([row[key] for row in pairs if row.get(key) is not None]) for key in FIGURES]
        print(f"| {model} | {sum(row['meets_targets'] for row in pairs)} of {len(pairs)} | {len(faces)} | "
              + " | ".join(f"{value:.3f}" for value in means) + " |")


if __name__ == "__main__":
    main()
