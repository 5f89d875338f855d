#!/usr/bin/env bash
# How weights/dvis-tiny-synth.safetensors was made: synthetic data, then the three DVIS stages on
# the CPU with `dvis train` (weights/README.md: wall times and the validation table).
# One thread per process: on a 2-core CPU, two one-thread jobs (or `--gpus 2`) beat one two-thread job.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
D=${1:-data}
R=${2:-runs/tiny}
dvis data synth "$D/train_more"       --videos 800 --frames 16 --size 96x160 --seed 11 --occlusion normal
dvis data synth "$D/train_heavy_more" --videos 800 --frames 16 --size 96x160 --seed 13 --occlusion heavy
dvis data synth "$D/val"              --videos 24  --frames 16 --size 96x160 --seed 12 --occlusion heavy

COMMON=(--data "$D/train_more:1" --data "$D/train_heavy_more:1" --val "$D/val" --set num_points=2000
        --set max_size=400 --progress plain --out "$R")
SMALL=(--set min_sizes=96,112,128 --set test_size=128)

# segmenter from scratch (the tiny preset: GroupNorm ResNet, backbone at the full LR)
dvis train segmenter "${COMMON[@]}" "${SMALL[@]}" --name wide --iters 8000 --batch 4 \
  --set lr=5e-4 --set steps=0.85 --set eval_every=4000 --set checkpoint_every=1000
# tracker and refiner: their heads start from the previous stage's (init_heads)
dvis train tracker "${COMMON[@]}" "${SMALL[@]}" --name wide --iters 1500 --batch 4 \
  --set lr=4e-4 --set init_heads=true --set steps=0.8 --set eval_every=750 --set checkpoint_every=500
dvis train refiner "${COMMON[@]}" "${SMALL[@]}" --name wide --iters 1500 --batch 2 \
  --set lr=4e-4 --set init_heads=true --set num_frames=15 --set frame_range=7 --set steps=0.8 \
  --set eval_every=750 --set checkpoint_every=500
cp "$R/wide/refiner/weights/last.safetensors" weights/dvis-tiny-synth.safetensors
