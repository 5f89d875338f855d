"""Data sets: synthetic YouTube-VIS / OVIS style videos (`synth`)."""
