# Copied unchanged from ../shared/spec/oracle/fill.py (the project spec): deterministic weights for the oracle checkpoints.
"""Deterministic, implementation-independent weights for a named state dict.

Every tensor is derived from its key name (and an optional salt) alone, so the same
official-format checkpoint can be rebuilt anywhere from a list of (key, shape) pairs.

The scales keep a randomly filled transformer from collapsing all queries onto one vector:
embedding tables are N(0, 1), and the last projection of every residual branch (attention
output, second FFN layer, second refiner conv) is scaled by 0.1, so each block stays close to
the identity and the queries stay distinct through the segmenter, tracker and refiner.
"""
import json
import sys
import zlib

import numpy as np

EMBEDDINGS = ("query_feat.weight", "query_embed.weight", "level_embed")
RESIDUAL_OUT = ("out_proj.weight", "linear2.weight", "output_proj.weight")


def fill_value(key: str, shape, salt: str = ""):
    rng = np.random.default_rng(zlib.crc32((salt + key).encode()))
    shape = tuple(shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked" or "relative_position_index" in key:
        return None  # buffers that the model derives itself
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if leaf == "running_mean":
        return rng.normal(0.0, 0.1, shape).astype(np.float32)
    if leaf == "bias" or leaf.endswith("_bias"):
        return rng.normal(0.0, 0.02, shape).astype(np.float32)
    if key.endswith(EMBEDDINGS):
        return rng.normal(0.0, 1.0, shape).astype(np.float32)
    if len(shape) == 1:  # norm scales
        return (1.0 + 0.1 * rng.normal(0.0, 1.0, shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    w = rng.normal(0.0, 1.0, shape) / np.sqrt(max(fan_in, 1))
    if key.endswith(RESIDUAL_OUT) or (".conv_short_aggregate_layers." in key and ".2.weight" in key):
        w = w * 0.1
    return w.astype(np.float32)


def build_state_dict(keys_shapes, salt: str = ""):
    import torch

    out = {}
    for key, shape in keys_shapes:
        v = fill_value(key, shape, salt)
        if v is not None:
            out[key] = torch.from_numpy(v)
    return out


if __name__ == "__main__":
    # usage: fill.py keys_shapes.json out.pth [salt]  -> writes {"model": state_dict}
    import torch

    pairs = json.load(open(sys.argv[1]))
    salt = sys.argv[3] if len(sys.argv) > 3 else ""
    torch.save({"model": build_state_dict(pairs, salt)}, sys.argv[2])
