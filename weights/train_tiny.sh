#!/usr/bin/env bash
# How weights/dvis-tiny-synth.safetensors was made: synthetic data, then the three DVIS stages on
# the CPU with `dvis train`, in four rounds, each continuing the one before (weights/README.md:
# wall times and the validation tables). Usage: weights/train_tiny.sh [DATA_DIR] [RUNS_DIR]
# One thread per process: on a 2-core CPU, two one-thread jobs (or `--gpus 2`) beat one two-thread job.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
D=${1:-data}
R=${2:-runs/tiny}
dvis data synth "$D/train_more"       --videos 800  --frames 16 --size 96x160 --seed 11 --occlusion normal
dvis data synth "$D/train_heavy_more" --videos 800  --frames 16 --size 96x160 --seed 13 --occlusion heavy
dvis data synth "$D/val"              --videos 24   --frames 16 --size 96x160 --seed 12 --occlusion heavy
# dev: for choices such as the test size, so that val stays a held-out report
dvis data synth "$D/dev"              --videos 48   --frames 16 --size 96x160 --seed 14 --occlusion heavy
VAL=(--val "$D/val" --set num_points=2000 --set max_size=400 --progress plain --out "$R")

# ---- round 1: every stage from scratch (the tiny preset: GroupNorm ResNet, backbone at the full LR)
R1=(--data "$D/train_more:1" --data "$D/train_heavy_more:1" "${VAL[@]}" --set min_sizes=96,112,128 --set test_size=128 --name wide)
dvis train segmenter "${R1[@]}" --iters 8000 --batch 4 \
  --set lr=5e-4 --set steps=0.85 --set eval_every=4000 --set checkpoint_every=1000
# tracker and refiner: their heads start from the previous stage's (init_heads)
dvis train tracker "${R1[@]}" --iters 1500 --batch 4 \
  --set lr=4e-4 --set init_heads=true --set steps=0.8 --set eval_every=750 --set checkpoint_every=500
dvis train refiner "${R1[@]}" --iters 1500 --batch 2 \
  --set lr=4e-4 --set init_heads=true --set num_frames=15 --set frame_range=7 --set steps=0.8 \
  --set eval_every=750 --set checkpoint_every=500
cp "$R/wide/refiner/weights/last.safetensors" "$R/round1.safetensors"

# ---- round 2: larger inputs, longer. (Written from that session's notes: its run folders were
# not kept; the segmenter ran in several --resume pieces, the tracker 2,000 iterations, then
# --resume to 4,000.)
R2=(--data "$D/train_more:1" --data "$D/train_heavy_more:1" "${VAL[@]}" --set min_sizes=112,128,144,160 --set test_size=144 --name big)
dvis train segmenter "${R2[@]}" --from "$R/wide/segmenter/weights/last.safetensors" --iters 16000 --batch 8 --gpus 2 \
  --set backbone_lr_multiplier=1.0 --set lr=5e-4 --set steps=0.85 --set eval_every=4000 --set checkpoint_every=1000
dvis train tracker "${R2[@]}" --from "$R/big/segmenter/weights/last.safetensors" --iters 4000 --batch 4 --gpus 2 \
  --set lr=4e-4 --set init_heads=true --set eval_every=1000 --set checkpoint_every=500
dvis train refiner "${R2[@]}" --iters 2000 --batch 2 --gpus 2 \
  --set lr=4e-4 --set init_heads=true --set num_frames=15 --set frame_range=7 --set eval_every=1000 --set checkpoint_every=500
cp "$R/big/refiner/weights/last.safetensors" "$R/round2.safetensors"

# ---- round 3: 2,400 more videos (heavy occlusion weighted 2:1); every stage continued from round 2
dvis data synth "$D/train_normal2" --videos 800  --frames 16 --size 96x160 --seed 21 --occlusion normal
dvis data synth "$D/train_heavy2"  --videos 1600 --frames 16 --size 96x160 --seed 23 --occlusion heavy
R3=(--data "$D/train_more:1" --data "$D/train_heavy_more:1" --data "$D/train_normal2:1" --data "$D/train_heavy2:2" "${VAL[@]}"
    --set min_sizes=112,128,144,160,176 --set test_size=144 --name r3)
dvis train segmenter "${R3[@]}" --from "$R/round2.safetensors" --iters 12000 --batch 8 --gpus 2 \
  --set backbone_lr_multiplier=1.0 --set lr=3e-4 --set steps=0.8 --set eval_every=4000 --set checkpoint_every=1000
# the new segmenter with round 2's tracker, which then adapts to it (and the same for the refiner)
dvis weights merge "$R/r3/start_tracker.safetensors" --segmenter "$R/r3/segmenter/weights/last.safetensors" --tracker "$R/round2.safetensors"
dvis train tracker "${R3[@]}" --from "$R/r3/start_tracker.safetensors" --iters 4000 --batch 4 --gpus 2 \
  --set lr=2e-4 --set steps=0.8 --set eval_every=2000 --set checkpoint_every=500
T="$R/r3/tracker/weights/last.safetensors"
dvis weights merge "$R/r3/start_refiner.safetensors" --segmenter "$T" --tracker "$T" --refiner "$R/round2.safetensors"
dvis train refiner "${R3[@]}" --from "$R/r3/start_refiner.safetensors" --iters 3000 --batch 2 --gpus 2 \
  --set lr=2e-4 --set num_frames=15 --set frame_range=7 --set steps=0.8 --set eval_every=1500 --set checkpoint_every=500
cp "$R/r3/refiner/weights/last.safetensors" "$R/round3.safetensors"

# ---- round 4: tracker and refiner continued from round 3 (segmenter kept), test size 176 (chosen on dev)
R4=(--data "$D/train_more:1" --data "$D/train_heavy_more:1" --data "$D/train_normal2:1" --data "$D/train_heavy2:2" "${VAL[@]}"
    --set min_sizes=112,128,144,160,176 --set test_size=176 --name r4)
dvis train tracker "${R4[@]}" --from "$R/round3.safetensors" --iters 3000 --batch 4 --gpus 2 \
  --set lr=2e-4 --set steps=0.8 --set eval_every=1500 --set checkpoint_every=500
T="$R/r4/tracker/weights/last.safetensors"
dvis weights merge "$R/r4/start_refiner.safetensors" --segmenter "$T" --tracker "$T" --refiner "$R/round3.safetensors"
dvis train refiner "${R4[@]}" --from "$R/r4/start_refiner.safetensors" --iters 4000 --batch 2 --gpus 2 \
  --set lr=2e-4 --set num_frames=15 --set frame_range=7 --set steps=0.8 --set eval_every=2000 --set checkpoint_every=500
cp "$R/r4/refiner/weights/last.safetensors" weights/dvis-tiny-synth.safetensors
