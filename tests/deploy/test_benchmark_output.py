"""Golden tests: benchmark_model outputs of several versions/dialects -> the same parsed fields."""
from __future__ import annotations

import pytest

from e2gan.deploy.benchmark_output import DIALECTS, parse_benchmark_output
from tests.deploy.conftest import golden

# file -> (dialect, inference avg ms, init ms, first inference ms, warm-up avg ms, timed runs, warm-up runs,
#          extra expected fields)
GOLDEN_CASES = {
    "tf1_14_no_stats.txt": ("no-stats", 137.722, 4.452, 146.161, 134.921, 50, 4,
                            {"inference_std_ms": 0.896, "inference_median_ms": None, "num_threads": 4}),
    "tf2_1_apk_logcat_average.txt": ("average", 80.6601, 4.108, 91.471, 90.2105, 50, 6,
                                     {"inference_min_ms": 79.566, "num_threads": 2}),
    "tf2_4_summary_peak_memory.txt": ("summary", 249.684, 16.242, 360.262, 304.586, 50, 2,
                                      {"memory_mb": {"init": 4.92969, "overall": 138.809}}),
    "tf2_10_info_enotation_crlf.txt": ("summary", 1240.27, 5.579, 1357.602, 1310.4, 50, 5,
                                       {"inference_median_ms": 1239.807, "inference_p5_ms": 1238.753,
                                        "inference_p95_ms": 1247.415,
                                        "memory_mb": {"init_delta": 6.36328, "overall_delta": 109.832}}),
    "litert_gpu_delegate_peak.txt": ("summary", 4.9786, 412.77, 23.11, 5.15233, 201, 97,
                                     {"delegate": {"replaced": 295, "total": 301, "name": "TfLiteGpuDelegateV2"},
                                      "delegate_partial": True, "delegate_fallback": False,
                                      "memory_mb": {"init_delta": 88.5, "overall_delta": 91.25, "peak": 102.348}}),
    "count_only_stats_lines.txt": ("count-only", 2950.34, None, 3512.391, None, 50, 1,
                                   {"inference_max_ms": 3189.954}),
}


def _close(a, b):
    if b is None or isinstance(b, (bool, str)):
        return a == b
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in b)
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_outputs_parse_to_the_recorded_values(name):
    dialect, avg, init, first, warm, runs, warm_runs, extra = GOLDEN_CASES[name]
    r = parse_benchmark_output(golden(name))
    assert r["dialect"] == dialect and dialect in DIALECTS
    assert _close(r["inference_avg_ms"], avg)
    assert _close(r["init_ms"], init)
    assert _close(r["first_inference_ms"], first)
    assert _close(r["warmup_avg_ms"], warm)
    assert r["runs"] == runs and r["warmup_runs"] == warm_runs
    for key, value in extra.items():
        assert _close(r[key], value), (key, r[key], value)


def test_crlf_file_really_has_carriage_returns():
    assert "\r\n" in golden("tf2_10_info_enotation_crlf.txt")


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
@pytest.mark.parametrize("line_end", ["\r\n", "\r", "\r\r\n"])
def test_line_endings_do_not_change_the_result(name, line_end):
    text = golden(name).replace("\r\n", "\n")
    assert parse_benchmark_output(text.replace("\n", line_end)) == parse_benchmark_output(text)


@pytest.mark.parametrize("prefix", ["INFO: ", "I tflite  : ", "06-11 14:02:35.722 12011 12030 I tflite  : "])
def test_prefixes_do_not_change_the_result(prefix):
    text = golden("tf2_4_summary_peak_memory.txt")
    prefixed = "".join(prefix + line for line in text.splitlines(keepends=True))
    assert parse_benchmark_output(prefixed) == parse_benchmark_output(text)


def test_e_notation_in_summary_and_stats():
    text = ("count=3 first=1.5e+04 curr=1.4e+04 min=1.4e+04 max=1.5e+04 avg=1.45e+04 std=500\n"
            "count=10 first=1.2e4 curr=1.1E+04 min=1e+04 max=1.3e+04 avg=1.15e+04 std=3e2\n"
            "INFO: Inference timings in us: Init: 2.5e+03, First inference: 1.5e+04, "
            "Warmup (avg): 1.45e+04, Inference (avg): 1.15e+04\n")
    r = parse_benchmark_output(text)
    assert r["inference_avg_ms"] == pytest.approx(11.5)
    assert r["init_ms"] == pytest.approx(2.5)
    assert r["inference_min_ms"] == pytest.approx(10.0)
    assert r["inference_std_ms"] == pytest.approx(0.3)


def test_newer_summary_wins_over_stats_when_both_present():
    # the summary's Inference (avg) is the headline even if a harness printed extra count= lines
    text = golden("tf2_4_summary_peak_memory.txt") + "\ncount=5 first=1 curr=1 min=1 max=1 avg=1 std=0\n"
    r = parse_benchmark_output(text)
    assert r["inference_avg_ms"] == pytest.approx(249.684)
    assert r["runs"] == 5  # the last stats line is the timed one


def test_oldest_average_form_with_value_first():
    r = parse_benchmark_output("Average inference timings in us: 137722 , Warmup: 146161, \n")
    assert r["dialect"] == "average"
    assert r["inference_avg_ms"] == pytest.approx(137.722)
    assert r["warmup_avg_ms"] == pytest.approx(146.161)


@pytest.mark.parametrize("name, hint", [("bad_permission_denied.txt", "Permission denied"),
                                        ("bad_model_not_loaded.txt", "Could not open")])
def test_outputs_without_timings_raise_value_error_with_the_first_error_line(name, hint):
    with pytest.raises(ValueError, match=hint):
        parse_benchmark_output(golden(name))


@pytest.mark.parametrize("text", ["", "\r\n\r\n", "STARTING!\nLoaded model x\n",
                                  "count=1 curr=3512391\n"])  # warm-up only: no average to report
def test_no_timing_lines_raise(text):
    with pytest.raises(ValueError, match="no benchmark_model timing line"):
        parse_benchmark_output(text)


def test_non_text_raises():
    with pytest.raises(ValueError):
        parse_benchmark_output(b"Inference timings in us: Init: 1")  # type: ignore[arg-type]
