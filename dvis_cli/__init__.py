"""dvis: Decoupled Video Instance Segmentation (DVIS, ICCV 2023) as a command-line tool."""

__version__ = "0.1.0"
