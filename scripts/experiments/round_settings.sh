# Sourced by the round-5/6 experiment scripts: the data, schedule and budget every run of those rounds
# shares, so that a distilled student and its scratch twin differ only in the teacher.
COMMON=(--data runs/data-synth --steps "$STEPS" --batch-size 4 --lr 1e-3 --val-every 1000 --threads 2
        --num-workers 1 --set train.schedule=cosine --set train.warmup_steps=20 --set train.val_batches=8
        --set loss.sync=0)
