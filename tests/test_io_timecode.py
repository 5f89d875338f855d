"""Positions (time or frame), exact frame rates, natural sort."""
from __future__ import annotations

from fractions import Fraction

import pytest

from dvis_cli.errors import InputError
from dvis_cli.io import Position, as_fraction, natural_sorted, parse_position
from dvis_cli.io.timecode import format_duration, format_rate, parse_rate


@pytest.mark.parametrize("value, expected", [
    (150, Position(frame=150)),
    ("150", Position(frame=150)),
    ("150f", Position(frame=150)),
    (1.5, Position(seconds=1.5)),
    ("1.5s", Position(seconds=1.5)),
    ("1.5", Position(seconds=1.5)),
    ("250ms", Position(seconds=0.25)),
    ("1:30", Position(seconds=90.0)),
    ("00:00:01.5", Position(seconds=1.5)),
    ("1:02:03.25", Position(seconds=3723.25)),
    (None, None),
])
def test_parse_position(value, expected):
    assert parse_position(value) == expected


@pytest.mark.parametrize("value", ["-1", -3, "abc", "1:75", "1.5x", True, float("nan")])
def test_bad_positions(value):
    with pytest.raises(InputError):
        parse_position(value)


@pytest.mark.parametrize("value, expected", [
    (29.97, Fraction(30000, 1001)),
    ("29.97", Fraction(30000, 1001)),
    (23.976, Fraction(24000, 1001)),
    (59.94, Fraction(60000, 1001)),
    ("30000/1001", Fraction(30000, 1001)),
    (Fraction(2997, 100), Fraction(2997, 100)),  # an explicit Fraction is taken as meant
    (25, Fraction(25)),
    (25.0, Fraction(25)),
    ("12.5", Fraction(25, 2)),
])
def test_as_fraction(value, expected):
    assert as_fraction(value) == expected


@pytest.mark.parametrize("value", [0, -25, "fast", "1/0"])
def test_bad_rates(value):
    with pytest.raises(InputError):
        as_fraction(value)


def test_header_rates_and_formatting():
    assert parse_rate("29.97") == Fraction(30000, 1001) and parse_rate("90k") == 90000 and parse_rate("x") is None
    assert format_rate(Fraction(30000, 1001)) == "29.97 (30000/1001)" and format_rate(Fraction(25)) == "25"
    assert format_duration(2.0) == "2.000 s" and format_duration(3723.5) == "1:02:03.500"


def test_natural_sort():
    names = ["10.png", "2.png", "1.png", "frame_10.jpg", "frame_9.jpg", "B.png", "a.png"]
    assert natural_sorted(names) == ["1.png", "2.png", "10.png", "a.png", "B.png", "frame_9.jpg", "frame_10.jpg"]
