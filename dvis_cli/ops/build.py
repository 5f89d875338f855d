"""Build arguments for the optional compiled op (filled in by the kernels issue)."""


def extension_build_args() -> dict:
    return {}
