# Sourced (from the repository root) by the round-5/6 experiment scripts: the data, schedule and budget every
# run of those rounds shares, so that a distilled student and its scratch twin differ only in the teacher,
# and the two evaluations they all end with. The sourcing script's first argument is the step count; a
# VAL_EVERY set before sourcing replaces the validation interval. It also trains the mouth-shape net the
# frame_articulation term reads (train_shape_net, SHAPE_NET), and run_training serves the expert scripts too; train_synced
# and use_multiway_expert are rounds 11-13's sync recipe and expert.
STEPS="${1:-20000}"
VAL_EVERY="${VAL_EVERY:-1000}"
PY=.venv/bin/python
SHARED=../shared/data
COMMON=(--data runs/data-synth --steps "$STEPS" --batch-size 4 --lr 1e-3 --val-every "$VAL_EVERY" --threads 2
        --num-workers 1 --set train.schedule=cosine --set train.warmup_steps=20 --set train.val_batches=8
        --set loss.sync=0)

# run_training RECIPE OUT [ARGS...]: lightlip-train RECIPE into OUT, resuming OUT if it has a checkpoint and leaving
# it as it is if it finished (summary.json); log lines go to OUT.log (a resumed run appends), progress bars do not.
run_training() {
  local recipe="$1" out="$2"
  shift 2
  [ -f "$out/summary.json" ] && return 0
  local resume=()
  [ -f "$out/checkpoints/last.pt" ] && resume=(--resume "$out")
  mkdir -p "$(dirname "$out")"
  $PY -m training.train.cli "$recipe" --out "$out" "$@" "${resume[@]}" 2>&1 \
    | stdbuf -oL tr "\r" "\n" | grep --line-buffered -v -E "s/step|step/s" >> "$out.log"
}

# train RECIPE OUT [ARGS...]: run_training of a generator recipe with COMMON.
train() {
  local recipe="$1" out="$2"
  shift 2
  run_training "$recipe" "$out" "${COMMON[@]}" "$@"
}

# train_synced OUT INIT SYNCNET WEIGHT MOUTH_ONLY [ARGS...]: round 11's recipe: the student INIT continued with the
# round-8 recipe (closed references) plus WEIGHT x the expert SYNCNET's sync loss from the first step, judged on the
# generated lower half (MOUTH_ONLY false) or on the mouth box alone (true; round 12's shipped student).
train_synced() {
  local out="$1" init="$2" syncnet="$3" weight="$4" mouth_only="$5"
  shift 5
  # COMMON sets loss.sync=0; the later --set wins.
  train student "$out" --init "$init" --lr 3e-4 --set data.reference_rest_fraction=1 --expert "$syncnet" \
    --set loss.sync="$weight" --set loss.sync_enable_below=null --set loss.sync_mouth_only="$mouth_only" "$@"
}

# multiway_expert_dir STEPS CANDIDATES: where expert_round11.sh trains round 11's multi-way matching expert of that
# schedule (the 4,000-step one without a suffix; a longer schedule is a new run).
multiway_expert_dir() {
  local dir="runs/round11/expert-match$2"
  [ "$1" = 4000 ] || dir="$dir-$1"
  echo "$dir"
}

# use_multiway_expert STEPS: SYNCNET = the 8-candidate expert of that schedule, trained first when missing.
use_multiway_expert() {
  local dir
  dir="$(multiway_expert_dir "$1" 8)"
  [ -f "$dir/summary.json" ] || scripts/experiments/expert_round11.sh "$1" 8
  SYNCNET="$dir/model.pt"
}

# Round 7's colour augmentation (off by default, docs/training.md round 7), as it ran then: values left in
# whatever range the transform gave (fit_range false).
COLOUR=(--set "data.colour_augment={saturation: [0.6, 1.4], channel_gain: [0.8, 1.25], brightness: [0.8, 1.2], fit_range: false}")

# The mouth-shape net that loss.frame_articulation needs (pass --shape-net "$SHAPE_NET"): trained once, about 5 min.
SHAPE_NET=runs/shapenet/model.pt
train_shape_net() {
  [ -f runs/shapenet/summary.json ] || $PY -m training.train.cli shapenet --data runs/data-synth --out runs/shapenet \
    --threads 2 --num-workers 1 --no-progress >> runs/shapenet.log 2>&1
}

# evaluate_test OUT_DIR MODEL...: the held-out synthetic test split (with LSE-D/C when SYNCNET names an expert).
evaluate_test() {
  local out="$1"
  shift
  local expert=()
  [ -n "${SYNCNET:-}" ] && expert=(--syncnet "$SYNCNET")
  $PY -m training.data.cli eval runs/data-synth --split test --model "$@" "${expert[@]}" --out "$out" --threads 2 --quiet
}

# evaluate_widest OUT_DIR MODEL...: the test split with each clip's widest-open frame as reference, without the
# baseline rows: how much of an open still face's mouth the output copies (round 8).
evaluate_widest() {
  local out="$1"
  shift
  $PY -m training.data.cli eval runs/data-synth --split test --reference widest --no-baselines --model "$@" \
    --out "$out" --threads 2 --quiet
}

# evaluate_speech OUT_DIR MODEL...: the shared real speech on the bundled face, the astronaut and two unseen
# test portraits.
evaluate_speech() {
  local out="$1"
  shift
  $PY -m training.data.cli eval-speech --model "$@" --audio "$SHARED"/speech/*.wav \
    --face lightlip_ros/assets/face.jpg training/data/synth/astronaut.jpg "$SHARED"/portraits/art_12.jpg \
    "$SHARED"/portraits/art_13.jpg --out "$out" --threads 2 --quiet
}

# evaluate_speech_more OUT_DIR MODEL...: the same speech on the four other unseen portraits (test art_18; val art_4,
# happy, people_0): three faces are too few to judge real speech by (docs/training.md round 8).
evaluate_speech_more() {
  local out="$1"
  shift
  $PY -m training.data.cli eval-speech --model "$@" --audio "$SHARED"/speech/*.wav \
    --face "$SHARED"/portraits/{art_18,art_4,happy,people_0}.jpg --out "$out" --threads 2 --quiet
}

# The round-5 student (shipped until round 8) that rounds 7 and 8 continue and compare with, out of the repository's
# history, so that those rounds start from the same weights after the shipped student has changed.
ROUND5_STUDENT=runs/round5-student.pt
[ -f "$ROUND5_STUDENT" ] || { mkdir -p runs && git show 0b35427:lightlip_ros/assets/student.pt > "$ROUND5_STUDENT"; }
# The round-8 student (shipped from round 8) that round 9 continues, out of the repository's history likewise.
ROUND8_STUDENT=runs/round8-student.pt
[ -f "$ROUND8_STUDENT" ] || { mkdir -p runs && git show bc006fd:lightlip_ros/assets/student.pt > "$ROUND8_STUDENT"; }
# The round-12 student (shipped from round 12) that round 13 continues.
ROUND12_STUDENT=runs/round12-student.pt
[ -f "$ROUND12_STUDENT" ] || { mkdir -p runs && git show 4977985:lightlip_ros/assets/student.pt > "$ROUND12_STUDENT"; }
