#!/usr/bin/env bash
# How weights/dvis-tiny-synth.safetensors was made: synthetic data, then the three DVIS stages on
# the CPU with `dvis train` (see weights/README.md for the wall times and the validation table).
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
D=${1:-data}
dvis data synth "$D/train"       --videos 240 --frames 16 --size 96x160 --seed 11 --occlusion normal
dvis data synth "$D/train_heavy" --videos 240 --frames 16 --size 96x160 --seed 13 --occlusion heavy
dvis data synth "$D/val"         --videos 24  --frames 16 --size 96x160 --seed 12 --occlusion heavy

COMMON=(--data "$D/train:1" --data "$D/train_heavy:1" --val "$D/val" --set lr=4e-4 --set num_points=2000
        --set min_sizes=80,96,112 --set max_size=400 --set eval_videos=12 --set checkpoint_every=250 --progress plain)

# segmenter: 3,000 iterations from scratch (tiny preset), then 6,000 more from those weights
dvis train segmenter "${COMMON[@]}" --iters 3000 --batch 4 --out runs/train --name tiny \
  --set backbone_lr_multiplier=1.0 --set eval_every=1000 --set steps=0.8
dvis train segmenter "${COMMON[@]}" --iters 6000 --batch 4 --out runs/train --name tiny \
  --from runs/train/tiny/segmenter/weights/last.safetensors --set backbone_lr_multiplier=1.0 --set eval_every=2000 --set steps=0.75
# tracker and refiner: their heads start from the previous stage's (init_heads)
dvis train tracker "${COMMON[@]}" --iters 1500 --batch 4 --out runs/final --name tiny \
  --from runs/train/tiny2/segmenter/weights/last.safetensors --set init_heads=true --set eval_every=750 --set steps=0.8
dvis train refiner "${COMMON[@]}" --iters 1500 --batch 2 --out runs/final --name tiny \
  --set init_heads=true --set num_frames=15 --set frame_range=7 --set eval_every=750 --set steps=0.8
cp runs/final/tiny/refiner/weights/last.safetensors weights/dvis-tiny-synth.safetensors
