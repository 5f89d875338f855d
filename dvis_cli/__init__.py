"""dvis: Decoupled Video Instance Segmentation (DVIS, ICCV 2023) as a command-line tool.

The small public API (imported lazily, so `import dvis_cli` stays light):

    from dvis_cli import load_model, predict_clip, VideoPredictor, segment_video
    model = load_model("weights.pth")              # official .pth/.pkl or dvis .safetensors
    pred = predict_clip(model, frames)             # (T, H, W, 3) uint8 RGB -> scores, labels, masks
"""

__version__ = "0.1.0"

_API = {
    "load_model": "dvis_cli.checkpoint.load",
    "predict_clip": "dvis_cli.inference.clip",
    "VideoPrediction": "dvis_cli.inference.clip",
    "VideoPredictor": "dvis_cli.inference.predictor",
    "SegmentOptions": "dvis_cli.inference.predictor",
    "segment_video": "dvis_cli.inference.segment",
    "ResultStore": "dvis_cli.inference.results",
    "build_dvis": "dvis_cli.model.build",
    "get_preset": "dvis_cli.config",
    "PRESETS": "dvis_cli.config",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'dvis_cli' has no attribute {name!r}")
