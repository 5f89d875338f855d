"""Training: matchers, losses and point sampling (this package); the engine and stages live in
their own modules. Inference never imports this package."""
from dvis_cli.training.criterion import (
    DEFAULT_WEIGHTS,
    SetCriterion,
    frames_as_images,
    matching_phase,
    point_bce_loss,
    point_dice_loss,
)
from dvis_cli.training.matcher import ConsistentMatcher, HungarianMatcher, VideoTargets
from dvis_cli.training.point_sampling import (
    per_video_generators,
    point_sample,
    seeded_generators,
    uncertain_point_coords,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "ConsistentMatcher",
    "HungarianMatcher",
    "SetCriterion",
    "VideoTargets",
    "frames_as_images",
    "matching_phase",
    "per_video_generators",
    "point_bce_loss",
    "point_dice_loss",
    "point_sample",
    "seeded_generators",
    "uncertain_point_coords",
]
