"""The real adb-shell client against a fake phone on loopback: push, run, parse; failure modes."""
from __future__ import annotations

import hashlib
import json
import shlex
import socket
import stat
import time
from pathlib import Path

import pytest

from e2gan.deploy.adb_session import REMOTE_DIR, Timeouts, connect, load_adb_key, parse_serial
from e2gan.deploy.phone_benchmark import EXIT_MARKER, benchmark_command, check_binary, run_phone_benchmark
from e2gan.errors import InputError
from tests.deploy.conftest import golden, write_fake_elf
from tests.deploy.fake_adb_device import FakeAdbDevice

FAST = Timeouts(transport_s=2.0, read_s=2.0, command_s=5.0, push_s=5.0, run_s=5.0, auth_s=1.0)
OUTPUT = "tf2_10_info_enotation_crlf.txt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- end to end
def test_push_run_parse_end_to_end(tmp_path, phone_files, adb_key):
    binary, model = phone_files
    with FakeAdbDevice(golden(OUTPUT)) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, threads=2, use_gpu=False, warmup=3, runs=20,
                                  core_mask="f0", adb_key=adb_key, out_dir=tmp_path / "lat", timeouts=FAST)
        # what the phone received is byte-identical, executable, where the command points
        remote_bin, remote_model = f"{REMOTE_DIR}/benchmark_model", f"{REMOTE_DIR}/model.tflite"
        assert dev.files[remote_bin].data == binary.read_bytes()
        assert dev.files[remote_model].data == model.read_bytes()
        assert dev.files[remote_bin].mode & 0o111
        assert dev.benchmark_argvs == [[remote_bin, f"--graph={remote_model}", "--num_threads=2", "--use_gpu=false",
                                        "--warmup_runs=3", "--num_runs=20"]]
        assert any(c.startswith("taskset f0 ") for c in dev.commands)
        assert any(c.startswith("chmod 755 ") for c in dev.commands)

    assert row["latency_ms"] == pytest.approx(1240.27)
    assert row["median_ms"] == pytest.approx(1239.807)
    assert row["parsed"]["dialect"] == "summary"
    assert row["device"]["model"] == "Pixel 7" and row["device"]["soc"] == "Tensor G2"
    assert row["device"]["android"] == "14" and row["device"]["abi"] == "arm64-v8a"
    assert row["binary"]["sha256"] == hashlib.sha256(binary.read_bytes()).hexdigest() == row["binary"]["remote_sha256"]
    assert row["binary"]["elf"] == {"bits": 64, "machine": "aarch64"}
    assert row["model"]["remote_sha256"] == row["model"]["sha256"]
    assert row["protocol"]["exit_code"] == 0 and row["protocol"]["core_mask"] == "f0"
    # thermal: readable zones before and after (the fake warms up by 4 C), the unreadable one kept with None
    before = {z["type"]: z["temp_c"] for z in row["thermal_before"]}
    after = {z["type"]: z["temp_c"] for z in row["thermal_after"]}
    assert before == {"cpu-0-0-usr": 41.2, "gpu-usr": 38.9, "battery": 31.0, "tsens_tz_sensor9": None}
    assert after["cpu-0-0-usr"] == pytest.approx(45.2)
    assert row["thermal_max_c"] == {"before": 41.2, "after": pytest.approx(45.2)}
    # raw output kept beside the parsed row, without the exit marker
    raw = Path(row["raw_output"])
    assert raw.parent == Path(row["row_file"]).parent == tmp_path / "lat"
    assert "Inference timings in us" in raw.read_text() and EXIT_MARKER not in raw.read_text()
    assert json.loads(Path(row["row_file"]).read_text())["latency_ms"] == pytest.approx(1240.27)


@pytest.mark.parametrize("name", ["tf1_14_no_stats.txt", "tf2_4_summary_peak_memory.txt", "litert_gpu_delegate_peak.txt"])
def test_every_dialect_end_to_end(tmp_path, phone_files, adb_key, name):
    from e2gan.deploy.benchmark_output import parse_benchmark_output

    binary, model = phone_files
    with FakeAdbDevice(golden(name)) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, use_gpu=True, adb_key=adb_key,
                                  out_dir=tmp_path, timeouts=FAST)
        assert "--use_gpu=true" in dev.benchmark_argvs[0]
    assert row["latency_ms"] == pytest.approx(parse_benchmark_output(golden(name))["inference_avg_ms"])


def test_every_adb_call_passes_all_three_timeouts(tmp_path, phone_files, adb_key, monkeypatch):
    """Short calls: shell() with all three timeouts. The benchmark: streaming_shell (it takes no
    timeout_s) with transport and read timeouts passed explicitly, the long budget."""
    from adb_shell.adb_device import AdbDevice

    seen, streamed = [], []
    original, original_stream = AdbDevice.shell, AdbDevice.streaming_shell

    def spy(self, command, transport_timeout_s=None, read_timeout_s=10.0, timeout_s=None, decode=True):
        seen.append((command, transport_timeout_s, read_timeout_s, timeout_s))
        return original(self, command, transport_timeout_s, read_timeout_s, timeout_s, decode)

    def stream_spy(self, command, transport_timeout_s=None, read_timeout_s=10.0, decode=True):
        streamed.append((command, transport_timeout_s, read_timeout_s))
        return original_stream(self, command, transport_timeout_s, read_timeout_s, decode)

    monkeypatch.setattr(AdbDevice, "shell", spy)
    monkeypatch.setattr(AdbDevice, "streaming_shell", stream_spy)
    binary, model = phone_files
    t = Timeouts(transport_s=3.0, read_s=4.0, command_s=6.0, push_s=5.0, run_s=77.0, auth_s=1.0)
    with FakeAdbDevice(golden(OUTPUT)) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path, timeouts=t)
    assert seen and all(c[1:] == (3.0, 4.0, 6.0) for c in seen)
    assert not [c for c in seen if "benchmark_model --graph" in c[0]]
    assert len(streamed) == 1 and "benchmark_model --graph" in streamed[0][0] and streamed[0][1:] == (77.0, 77.0)
    assert row["latency_ms"] == pytest.approx(1240.27)


def test_total_budget_is_enforced_while_streaming(tmp_path, phone_files, adb_key, monkeypatch):
    """streaming_shell has no timeout_s: a phone that keeps trickling output past run_s is stopped,
    and what it printed is saved."""
    from adb_shell.adb_device import AdbDevice

    def trickle(self, command, transport_timeout_s=None, read_timeout_s=10.0, decode=True):
        for i in range(100):
            time.sleep(0.05)
            yield f"INFO: still running {i}\n".encode()

    monkeypatch.setattr(AdbDevice, "streaming_shell", trickle)
    binary, model = phone_files
    t = Timeouts(transport_s=2.0, read_s=2.0, command_s=5.0, push_s=5.0, run_s=0.3, auth_s=1.0)
    with FakeAdbDevice(golden(OUTPUT)) as dev:
        with pytest.raises(InputError, match=r"device stopped answering during benchmark_model .*within 0\.3 s") as e:
            run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path / "lat", timeouts=t,
                                stamp="s")
    saved = Path(str(e.value).rsplit("saved to ", 1)[1])
    assert saved == tmp_path / "lat" / "adb-s.txt"
    assert saved.read_text().startswith("INFO: still running 0\n") and "still running 99" not in saved.read_text()


def test_authorized_key_connects_and_unknown_key_is_refused(tmp_path, phone_files, adb_key, other_adb_key):
    binary, model = phone_files
    pub = Path(f"{adb_key}.pub").read_text()
    with FakeAdbDevice(golden(OUTPUT), authorized_keys=[pub]) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path, timeouts=FAST)
        assert row["latency_ms"] == pytest.approx(1240.27) and dev.offered_keys == []
        t0 = time.perf_counter()
        with pytest.raises(InputError, match=r"did not accept the adb key .*127\.0\.0\.1:\d+.*Allow USB debugging") as e:
            run_phone_benchmark(model, binary, dev.serial, adb_key=other_adb_key, out_dir=tmp_path, timeouts=FAST)
        assert time.perf_counter() - t0 < FAST.auth_s + 3
        assert str(other_adb_key) in str(e.value) and "\n" not in str(e.value)
        assert len(dev.offered_keys) == 1  # the phone was shown the new key


def test_new_key_accepted_on_the_phone(tmp_path, phone_files, other_adb_key, adb_key):
    binary, model = phone_files
    pub = Path(f"{adb_key}.pub").read_text()
    with FakeAdbDevice(golden(OUTPUT), authorized_keys=[pub], accept_new_keys=True) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, adb_key=other_adb_key, out_dir=tmp_path, timeouts=FAST)
    assert row["latency_ms"] == pytest.approx(1240.27)


# ----------------------------------------------------------------------------- bad input
def test_no_device_names_host_and_port(tmp_path, phone_files, adb_key):
    binary, model = phone_files
    port = _free_port()
    with pytest.raises(InputError, match=rf"^no device \(127\.0\.0\.1:{port}\)"):
        run_phone_benchmark(model, binary, f"127.0.0.1:{port}", adb_key=adb_key, out_dir=tmp_path, timeouts=FAST)


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"x" * 64])
def test_something_else_on_the_port(tmp_path, phone_files, adb_key, reply):
    """A port that accepts TCP but never speaks adb (silent, or another protocol)."""
    import threading

    binary, model = phone_files
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        conn.recv(1024)
        if reply:
            conn.sendall(reply)
        time.sleep(1.5)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    port = server.getsockname()[1]
    t = Timeouts(transport_s=0.5, read_s=0.5, command_s=1.0, push_s=1.0, run_s=1.0, auth_s=0.5)
    try:
        with pytest.raises(InputError, match=rf"^no device answering adb \(127\.0\.0\.1:{port}\)"):
            run_phone_benchmark(model, binary, f"127.0.0.1:{port}", adb_key=adb_key, out_dir=tmp_path, timeouts=t)
    finally:
        server.close()


@pytest.mark.parametrize("mode, message", [("drop", "device disconnected during benchmark_model"),
                                           ("partial-drop", "device disconnected during benchmark_model"),
                                           ("hang", "device stopped answering during benchmark_model")])
def test_device_gone_or_silent_mid_run(tmp_path, phone_files, adb_key, mode, message):
    binary, model = phone_files
    t = Timeouts(transport_s=2.0, read_s=2.0, command_s=5.0, push_s=5.0, run_s=1.0, auth_s=1.0)
    with FakeAdbDevice(golden(OUTPUT), on_benchmark=mode) as dev:
        t0 = time.perf_counter()
        with pytest.raises(InputError, match=message) as e:
            run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path / "lat", timeouts=t)
        assert time.perf_counter() - t0 < 4.0  # no spinning until a long read timeout
        assert dev.serial in str(e.value) and "\n" not in str(e.value)
    # what arrived before the phone vanished is kept, in the raw-output file the error line names
    saved = Path(str(e.value).rsplit("raw output so far (", 1)[1].split(" bytes) saved to ", 1)[1])
    assert saved.parent == tmp_path / "lat" and saved.name.startswith("adb-") and saved.suffix == ".txt"
    assert [p.name for p in (tmp_path / "lat").iterdir()] == [saved.name]  # no row, no temp file
    data = saved.read_bytes()
    if mode == "partial-drop":  # the fake sends the first third of the real output, then closes
        full = golden(OUTPUT).encode()
        assert data == full[: max(1, len(full) // 3)] and len(data) > 100
        assert f"({len(data)} bytes)" in str(e.value)
    else:
        assert data == b"" and "(0 bytes)" in str(e.value)


def test_output_that_does_not_parse_is_saved_and_named(tmp_path, phone_files, adb_key):
    binary, model = phone_files
    with FakeAdbDevice("Segmentation fault\n") as dev:
        with pytest.raises(InputError, match="did not parse") as e:
            run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path / "lat", timeouts=FAST)
    saved = Path(str(e.value).rsplit("raw output saved to ", 1)[1])
    assert saved.parent == tmp_path / "lat" and saved.read_text() == "Segmentation fault\n"
    assert "Segmentation fault" in str(e.value)


def test_device_side_error_output_is_saved(tmp_path, phone_files, adb_key):
    """Model missing on the phone: benchmark_model prints errors and exits 1."""
    binary, model = phone_files

    class LosesModel(FakeAdbDevice):
        def _benchmark(self, argv):
            self.files.pop(next(a.split("=", 1)[1] for a in argv if a.startswith("--graph=")), None)
            return super()._benchmark(argv)

    with LosesModel(golden(OUTPUT)) as dev:
        with pytest.raises(InputError, match=r"exit status 1; ERROR: Could not open") as e:
            run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path, timeouts=FAST)
    assert "Failed to mmap" in Path(str(e.value).rsplit("saved to ", 1)[1]).read_text()


def test_missing_non_executable_and_non_elf_binaries(tmp_path, phone_files, adb_key):
    _, model = phone_files
    with pytest.raises(InputError, match="no benchmark_model binary given"):
        run_phone_benchmark(model, None, "127.0.0.1:5555", adb_key=adb_key)
    with pytest.raises(InputError, match="benchmark_model not found"):
        run_phone_benchmark(model, tmp_path / "nope", "127.0.0.1:5555", adb_key=adb_key)
    plain = write_fake_elf(tmp_path / "bm_noexec")
    plain.chmod(0o644)
    with pytest.raises(InputError, match=r"not executable.*chmod \+x"):
        run_phone_benchmark(model, plain, "127.0.0.1:5555", adb_key=adb_key)
    script = tmp_path / "bm.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    with pytest.raises(InputError, match="not an ELF executable"):
        run_phone_benchmark(model, script, "127.0.0.1:5555", adb_key=adb_key)
    with pytest.raises(InputError, match="no model at"):
        run_phone_benchmark(tmp_path / "missing.tflite", write_fake_elf(tmp_path / "bm"), "127.0.0.1:5555")


def test_push_refused_and_corrupted(tmp_path, phone_files, adb_key):
    binary, model = phone_files
    with FakeAdbDevice(golden(OUTPUT), fail_push=True) as dev:
        with pytest.raises(InputError, match=r"device refused push of benchmark_model.*Read-only"):
            run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path, timeouts=FAST)
    with FakeAdbDevice(golden(OUTPUT), corrupt_push=True) as dev:
        with pytest.raises(InputError, match="pushed file differs on the phone"):
            run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path, timeouts=FAST)
        assert dev.benchmark_argvs == []


def test_phone_without_sha256sum_still_runs(tmp_path, phone_files, adb_key):
    binary, model = phone_files
    with FakeAdbDevice(golden(OUTPUT), has_sha256sum=False) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path, timeouts=FAST)
    assert row["binary"]["remote_sha256"] is None and row["latency_ms"] == pytest.approx(1240.27)


# ----------------------------------------------------------------------------- quoting
INJECTION = "m; touch pwned $(reboot) `id` 'q' \"d\".tflite"


def test_injection_in_paths_is_quoted(tmp_path, adb_key):
    binary = write_fake_elf(tmp_path / "benchmark_model; rm -rf sdcard")
    model = tmp_path / INJECTION
    model.write_bytes(b"tflite bytes")
    remote_dir = "/data/local/tmp/e2gan it's"
    with FakeAdbDevice(golden(OUTPUT)) as dev:
        row = run_phone_benchmark(model, binary, dev.serial, adb_key=adb_key, out_dir=tmp_path / "lat",
                                  timeouts=FAST, remote_dir=remote_dir)
        remote_model = f"{remote_dir}/{INJECTION}"
        remote_bin = f"{remote_dir}/benchmark_model; rm -rf sdcard"
        assert dev.files[remote_model].data == b"tflite bytes"
        (argv,) = dev.benchmark_argvs
        assert argv[0] == remote_bin and argv[1] == f"--graph={remote_model}"
        # no command other than ours ran: each line's first word is one we sent
        first_words = {shlex.split(c)[0] for c in dev.commands}
        assert first_words <= {"getprop", "mkdir", "chmod", "sha256sum", "grep", remote_bin}
        assert not any(p.endswith("pwned") for p in dev.files)
    assert row["latency_ms"] == pytest.approx(1240.27)


def test_benchmark_command_quotes_every_argument():
    cmd = benchmark_command("/d/bm $(x)", "/d/m;reboot.tflite", threads=4, use_gpu=True, warmup=2, runs=9,
                            core_mask="0xF0", extra_args=["--max_secs=5", "--x=a b"])
    line, marker = cmd.rsplit("; ", 1)
    assert marker == f"echo {EXIT_MARKER}$?"
    assert shlex.split(line) == ["taskset", "f0", "/d/bm $(x)", "--graph=/d/m;reboot.tflite", "--num_threads=4",
                                 "--use_gpu=true", "--warmup_runs=2", "--num_runs=9", "--max_secs=5", "--x=a b"]


@pytest.mark.parametrize("mask", ["", "0", "zz", "f0; reboot", "1" * 17])
def test_bad_core_mask(mask):
    with pytest.raises(InputError, match="core mask"):
        benchmark_command("bm", "m.tflite", core_mask=mask)


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"warmup": -1}, {"runs": 0}])
def test_bad_benchmark_numbers(kwargs):
    with pytest.raises(InputError):
        benchmark_command("bm", "m.tflite", **kwargs)


# ----------------------------------------------------------------------------- addressing and keys
@pytest.mark.parametrize("serial, expected", [("192.168.1.5:5555", ("tcp", "192.168.1.5", 5555)),
                                              ("phone.local", ("tcp", "phone.local", 5555)),
                                              ("[fe80::1]:37000", ("tcp", "fe80::1", 37000)),
                                              ("usb", ("usb", None, None)), ("USB:0A1B2C", ("usb", "0A1B2C", None))])
def test_parse_serial(serial, expected):
    assert parse_serial(serial) == expected


@pytest.mark.parametrize("serial", ["", "host:port", "host:0", "host:70000", "[fe80::1"])
def test_bad_serial(serial):
    with pytest.raises(InputError):
        parse_serial(serial)


def test_usb_without_the_extra_is_one_clear_line(adb_key):
    try:
        import usb1  # noqa: F401
        pytest.skip("libusb1 installed: USB would try real hardware")
    except ImportError:
        pass
    with pytest.raises(InputError, match=r"USB support is not installed.*adb-shell\[usb\]"):
        connect("usb", adb_key=adb_key, timeouts=FAST)


def test_key_generated_with_mode_0600_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    signer, info = load_adb_key()
    key = tmp_path / ".android" / "adbkey"
    assert info == {"path": str(key), "generated": True, "mode": "0o600"}
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert Path(f"{key}.pub").read_text().split()[0]
    assert [p.name for p in key.parent.iterdir()] and not [p for p in key.parent.iterdir() if p.name.startswith(".adbkey")]
    _, again = load_adb_key()
    assert again["generated"] is False
    assert signer.Sign(b"x" * 20) and len(signer.Sign(b"x" * 20)) == 256


def test_missing_pub_is_rebuilt_and_garbage_key_rejected(tmp_path, adb_key):
    import shutil

    key = tmp_path / "k"
    shutil.copy(adb_key, key)
    load_adb_key(key)
    assert Path(f"{key}.pub").read_text().split()[0] == Path(f"{adb_key}.pub").read_text().split()[0]
    bad = tmp_path / "bad"
    bad.write_text("not a key")
    with pytest.raises(InputError, match="unreadable adb key"):
        load_adb_key(bad)
    with pytest.raises(InputError, match="no adb key"):
        load_adb_key(tmp_path / "absent", generate=False)


def test_check_binary_records_sha_and_arch(tmp_path):
    b = write_fake_elf(tmp_path / "bm", machine=40)
    info = check_binary(b)
    assert info["sha256"] == hashlib.sha256(b.read_bytes()).hexdigest() and info["elf"]["machine"] == "arm"
