"""The generic Markdown table and the arm labels: how numbers, gaps and config values are written."""
import pandas as pd

from e2gan.markdown_table import label_value, to_markdown


def test_numbers_gaps_and_magnitudes():
    df = pd.DataFrame({"a": [1.23456, float("nan"), float("inf"), 3e12, 1234.0], "b": ["x", None, "y", "z", "w"]},
                      index=pd.Index(list("vwxyz"), name="row"))
    lines = to_markdown(df, {"a": 2}).splitlines()
    assert lines[:2] == ["| row | a | b |", "|---|---:|---:|"]
    assert lines[2] == "| v | 1.23 | x |"          # decimals per column
    assert lines[3] == "| w | – | – |"             # NaN and None are a dash
    assert lines[4] == "| x | ∞ | y |"
    assert lines[5] == "| y | 3.000e+12 | z |"     # FLOPs, bytes: magnitude, not the last digit
    assert lines[6] == "| z | 1,234 | w |"         # a whole number of 100 or more: no decimals
    assert to_markdown(df[["a"]].iloc[:1]).splitlines()[2] == "| v | 1.235 |"   # default 3 decimals


def test_config_values_as_row_labels():
    assert label_value(["down", "tb"]) == "down+tb"
    assert label_value({"down": 4, "tb": 1}) == "down=4, tb=1"
    assert label_value(16.0) == "16" and label_value(0.5) == "0.5" and label_value("kmeans") == "kmeans"
