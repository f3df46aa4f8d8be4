"""One authenticated adb connection to a phone, with every timeout passed and failures in one line.

Talks to the phone with adb-shell (pure Python; no `adb` server needed): TCP
(`HOST:PORT`, e.g. after `adb tcpip 5555` or Android 11+ wireless debugging) or USB
(`usb` / `usb:SERIAL`, needs the `adb-shell[usb]` extra, i.e. libusb1). The host key is the
user's `~/.android/adbkey` (or a given path); without one, a key pair is generated there with
mode 0600 and the phone asks once to allow it.

adb-shell's `shell()` applies a 10 s read timeout whatever the constructor says, so every call
here passes `transport_timeout_s`, `read_timeout_s` and `timeout_s` explicitly. Long calls go
through `streaming_shell` (transport and read timeouts passed explicitly, the long budget; the
whole-call budget checked after every chunk) so that a phone that vanishes mid-run still leaves
what it printed: the partial output is saved to a file and the error line names it.
"""
from __future__ import annotations

import os
import re
import select
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2gan.errors import InputError
from e2gan.io import atomic_write_bytes

__all__ = ["Timeouts", "PhoneSession", "parse_serial", "load_adb_key", "connect", "REMOTE_DIR", "THERMAL_COMMAND",
           "DEFAULT_KEY"]

REMOTE_DIR = "/data/local/tmp/e2gan"
DEFAULT_KEY = Path("~/.android/adbkey")
DEFAULT_PORT = 5555
THERMAL_COMMAND = "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp"
PROPS = {"model": "ro.product.model", "manufacturer": "ro.product.manufacturer", "device": "ro.product.device",
         "soc_model": "ro.soc.model", "soc_manufacturer": "ro.soc.manufacturer", "board": "ro.board.platform",
         "hardware": "ro.hardware", "android": "ro.build.version.release", "sdk": "ro.build.version.sdk",
         "abi": "ro.product.cpu.abi", "build": "ro.build.fingerprint"}


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``transport_s``/``read_s``/``command_s``: short shell calls (per packet, per
    awaited reply, whole call); ``push_s``: per packet while pushing; ``run_s``: the whole
    benchmark (also its per-packet and read budget, since benchmark_model can stay silent for
    its whole timed phase); ``auth_s``: time to accept the key prompt on the phone."""

    transport_s: float = 10.0
    read_s: float = 10.0
    command_s: float = 30.0
    push_s: float = 60.0
    run_s: float = 600.0
    auth_s: float = 30.0


# ----------------------------------------------------------------------------- addressing, keys
def parse_serial(serial: str) -> tuple[str, Any, Any]:
    """'HOST:PORT' | 'HOST' (port 5555) | 'usb' | 'usb:SERIAL' -> ('tcp', host, port) | ('usb', serial, None)."""
    if not serial or not str(serial).strip():
        raise InputError("no device given", "--serial", "HOST:PORT (adb over TCP) or usb[:SERIAL]")
    s = str(serial).strip()
    if s.lower() == "usb":
        return "usb", None, None
    if s.lower().startswith("usb:"):
        return "usb", s[4:] or None, None
    host, port = s, DEFAULT_PORT
    if s.startswith("["):  # [ipv6]:port
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", s)
        if not m:
            raise InputError(f"serial {s!r}", "--serial", "HOST:PORT, [IPv6]:PORT or usb[:SERIAL]")
        host, port = m.group(1), int(m.group(2) or DEFAULT_PORT)
    elif s.count(":") == 1:
        host, p = s.rsplit(":", 1)
        if not p.isdigit():
            raise InputError(f"serial {s!r}", "--serial", "HOST:PORT with a numeric port, or usb[:SERIAL]")
        port = int(p)
    if not host or not 0 < port < 65536:
        raise InputError(f"serial {s!r}", "--serial", "HOST:PORT with a port in 1..65535, or usb[:SERIAL]")
    return "tcp", host, port


def load_adb_key(path: str | Path | None = None, generate: bool = True) -> tuple[Any, dict]:
    """A PythonRSASigner for the adb key at ``path`` (default ~/.android/adbkey).

    A missing key is generated there (mode 0600, its folder 0700) when ``generate``; a missing
    ``.pub`` is rebuilt from the private key. Returns (signer, {'path', 'generated', 'mode'}).
    """
    from adb_shell.auth.keygen import keygen, write_public_keyfile
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    key = Path(path if path is not None else DEFAULT_KEY).expanduser()
    where = "--adb-key" if path is not None else str(DEFAULT_KEY)
    generated = False
    if key.is_dir():
        raise InputError(f"adb key {key} is a folder", where, "the private key file (e.g. ~/.android/adbkey)")
    if not key.exists():
        if not generate:
            raise InputError(f"no adb key at {key}", where, "an adb private key (run `adb devices` once, or let e2gan generate one)")
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp_dir = Path(tempfile.mkdtemp(prefix=".adbkey.", dir=key.parent))  # mkdtemp: mode 0700
        try:
            tmp = tmp_dir / "adbkey"
            keygen(str(tmp))
            os.chmod(tmp, 0o600)
            os.chmod(f"{tmp}.pub", 0o644)
            os.replace(f"{tmp}.pub", f"{key}.pub")
            os.replace(tmp, key)
        finally:
            for leftover in tmp_dir.iterdir():
                leftover.unlink()
            tmp_dir.rmdir()
        generated = True
    pub = Path(f"{key}.pub")
    try:
        if not pub.exists():
            write_public_keyfile(str(key), str(pub))
        signer = PythonRSASigner(pub.read_text(), key.read_text())
    except (ValueError, OSError, IndexError) as exc:
        raise InputError(f"unreadable adb key {key}", where,
                         f"a PEM (PKCS#8) RSA private key as adb writes it ({str(exc).splitlines()[0][:120]})") from None
    return signer, {"path": str(key), "generated": generated, "mode": oct(stat.S_IMODE(key.stat().st_mode))}


# ----------------------------------------------------------------------------- connection
def _tcp_device(host: str, port: int, transport_timeout_s: float):
    """AdbDeviceTcp whose transport notices a closed socket, sends whole buffers, and sets NODELAY.

    adb-shell's TcpTransport returns b'' forever once the peer closes (its read loop then spins
    at full CPU until the read timeout: the whole benchmark budget) and may send only part of a
    buffer on its non-blocking socket.
    """
    from adb_shell.adb_device import AdbDevice, AdbDeviceTcp
    from adb_shell.exceptions import TcpTimeoutException
    from adb_shell.transport.tcp_transport import TcpTransport

    class _Transport(TcpTransport):
        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            # adb-shell writes each header and payload separately: without NODELAY, Nagle's
            # algorithm and delayed ACKs add tens of milliseconds to every packet.
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data and numbytes:
                raise ConnectionResetError(f"{self._host}:{self._port} closed the connection")
            return data

        def bulk_write(self, data, transport_timeout_s):
            view, sent = memoryview(bytes(data)), 0
            while sent < len(view):
                _, writable, _ = select.select([], [self._connection], [], transport_timeout_s)
                if not writable:
                    raise TcpTimeoutException(f"sending to {self._host}:{self._port} timed out "
                                              f"({transport_timeout_s} s)")
                try:
                    sent += self._connection.send(view[sent:])
                except BlockingIOError:
                    continue
            return sent

    class _Device(AdbDeviceTcp):
        def __init__(self):  # pylint: disable=super-init-not-called
            AdbDevice.__init__(self, _Transport(host, port), default_transport_timeout_s=transport_timeout_s)

    return _Device()


def _usb_device(usb_serial: str | None, transport_timeout_s: float):
    try:
        from adb_shell.adb_device import AdbDeviceUsb
        from adb_shell.exceptions import InvalidTransportError, UsbDeviceNotFoundError
    except ImportError as exc:  # pragma: no cover - adb-shell is a dependency
        raise InputError("adb-shell is not installed", "--serial usb", f"pip install 'adb-shell[usb]' ({exc})") from None
    try:
        return AdbDeviceUsb(serial=usb_serial, default_transport_timeout_s=transport_timeout_s)
    except InvalidTransportError:
        raise InputError("USB support is not installed", "--serial usb",
                         "pip install 'adb-shell[usb]' (libusb1), or connect over TCP with --serial HOST:PORT") from None
    except UsbDeviceNotFoundError:
        raise InputError(f"no USB device{' ' + usb_serial if usb_serial else ''}", "--serial usb",
                         "a phone with USB debugging on (and no running `adb` server holding it: adb kill-server)") from None
    except Exception as exc:  # noqa: BLE001 - libusb errors (e.g. LIBUSB_ERROR_BUSY/ACCESS)
        raise InputError("cannot open the USB device", "--serial usb",
                         f"access to the phone ({type(exc).__name__}: {str(exc)[:120]}; try `adb kill-server`)") from None


class PhoneSession:
    """One adb connection; every call passes all three adb-shell timeouts and maps failures to InputError."""

    def __init__(self, device: Any, where: str, timeouts: Timeouts):
        self.device, self.where, self.timeouts = device, where, timeouts
        self.log: list[dict] = []

    def __enter__(self) -> PhoneSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.device.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass

    def _fail(self, exc: BaseException, what: str, budget: float) -> InputError:
        from adb_shell import exceptions as ae

        if isinstance(exc, (ae.TcpTimeoutException, ae.AdbTimeoutError, socket.timeout, TimeoutError)):
            return InputError(f"device stopped answering during {what}", self.where,
                              f"a reply within {budget:g} s (phone asleep, unplugged or off the network? "
                              "raise the timeout for long benchmarks)")
        if isinstance(exc, (ConnectionError, OSError, ae.AdbConnectionError)):
            return InputError(f"device disconnected during {what}", self.where,
                              f"a connected phone ({type(exc).__name__}: {str(exc)[:120]})")
        if isinstance(exc, (ae.PushFailedError, ae.AdbCommandFailureException)):
            return InputError(f"device refused {what}", self.where, f"a writable {REMOTE_DIR} ({str(exc)[:160]})")
        return InputError(f"unexpected reply during {what}", self.where,
                          f"the adb protocol ({type(exc).__name__}: {str(exc)[:160]})")

    def shell(self, command: str, long: bool = False, what: str | None = None) -> str:
        """One short shell call (adb-shell's ``shell()``, all three timeouts passed)."""
        t = self.timeouts
        transport, read, total = (t.run_s, t.run_s, t.run_s) if long else (t.transport_s, t.read_s, t.command_s)
        t0 = time.perf_counter()
        try:
            out = self.device.shell(command, transport_timeout_s=transport, read_timeout_s=read, timeout_s=total)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to one line for the user
            raise self._fail(exc, what or f"`{command[:60]}`", total) from None
        self.log.append({"command": command, "seconds": round(time.perf_counter() - t0, 3)})
        return out if isinstance(out, str) else out.decode("utf-8", "replace")

    def stream(self, command: str, save_to: str | Path, what: str | None = None) -> str:
        """A long call (the benchmark) through adb-shell's ``streaming_shell``, keeping partial output.

        Chunks are accumulated as they arrive; ``transport_timeout_s`` and ``read_timeout_s`` are
        passed explicitly (``run_s``), and the whole-call budget (``run_s``; streaming_shell takes
        no ``timeout_s``) is checked after every chunk, as adb-shell's ``shell()`` does. On any
        failure, what arrived so far is written atomically to ``save_to`` and the one-line
        InputError names that file.
        """
        budget = self.timeouts.run_s
        chunks: list[bytes] = []
        t0 = time.perf_counter()
        try:
            for chunk in self.device.streaming_shell(command, transport_timeout_s=budget, read_timeout_s=budget,
                                                     decode=False):
                chunks.append(chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8"))
                if time.perf_counter() - t0 > budget:
                    raise TimeoutError(f"the command did not complete within {budget:g} s")
        except Exception as exc:  # noqa: BLE001 - mapped to one line for the user
            base = exc if isinstance(exc, InputError) else self._fail(exc, what or f"`{command[:60]}`", budget)
            data = b"".join(chunks)
            try:
                atomic_write_bytes(save_to, data)  # bytes as received: a cut multi-byte character stays visible
                saved = f"raw output so far ({len(data)} bytes) saved to {save_to}"
            except OSError as write_exc:
                saved = f"raw output so far ({len(data)} bytes) not saved ({write_exc.strerror or write_exc}: {save_to})"
            raise InputError(base.what, base.where, f"{base.expected}; {saved}") from None
        self.log.append({"command": command, "seconds": round(time.perf_counter() - t0, 3), "streamed": True})
        return b"".join(chunks).decode("utf-8", "replace")

    def push(self, local: str | Path, remote: str, mode: int = 0o644) -> None:
        t = self.timeouts
        try:
            self.device.push(str(local), remote, st_mode=stat.S_IFREG | mode, transport_timeout_s=t.push_s,
                             read_timeout_s=t.push_s)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"push of {Path(local).name}", t.push_s) from None

    def getprops(self) -> dict[str, str]:
        props = {}
        for line in self.shell("getprop", what="getprop").splitlines():
            m = re.match(r"\s*\[([^\]]+)\]:\s*\[(.*)\]\s*$", line)
            if m:
                props[m.group(1)] = m.group(2)
        return props

    def device_info(self) -> dict[str, Any]:
        props = self.getprops()
        info: dict[str, Any] = {name: props.get(key) or None for name, key in PROPS.items()}
        info["soc"] = info["soc_model"] or info["board"] or info["hardware"]
        return info

    def thermal(self) -> list[dict[str, Any]]:
        """[{'zone', 'type', 'temp_c', 'raw'}] for every readable thermal zone."""
        zones: dict[str, dict[str, Any]] = {}
        for line in self.shell(THERMAL_COMMAND, what="thermal readout").splitlines():
            m = re.match(r"\s*(/sys/class/thermal/(thermal_zone\d+))/(type|temp):(.*)$", line.strip())
            if not m:
                continue  # "grep: ...: Invalid argument" for zones that cannot be read right now
            z = zones.setdefault(m.group(2), {"zone": m.group(2), "type": None, "temp_c": None, "raw": None})
            value = m.group(4).strip()
            if m.group(3) == "type":
                z["type"] = value
            else:
                z["raw"] = value
                try:
                    v = float(value)
                    z["temp_c"] = v / 1000.0 if abs(v) >= 200 else v  # millidegrees on most kernels
                except ValueError:
                    pass
        return sorted(zones.values(), key=lambda z: int(z["zone"].removeprefix("thermal_zone")))


def connect(serial: str, adb_key: str | Path | None = None, timeouts: Timeouts = Timeouts()) -> PhoneSession:
    """Open an authenticated adb session to ``serial`` ('HOST:PORT' or 'usb[:SERIAL]')."""
    from adb_shell import exceptions as ae

    kind, a, b = parse_serial(serial)
    signer, key_info = load_adb_key(adb_key)
    where = f"{a}:{b}" if kind == "tcp" else f"usb{':' + a if a else ''}"
    device = _tcp_device(a, b, timeouts.transport_s) if kind == "tcp" else _usb_device(a, timeouts.transport_s)
    prompted = []
    try:
        device.connect(rsa_keys=[signer], transport_timeout_s=timeouts.transport_s, auth_timeout_s=timeouts.auth_s,
                       read_timeout_s=timeouts.read_s, auth_callback=lambda _dev: prompted.append(True))
    except ConnectionRefusedError:
        raise InputError("no device", where, "an adb daemon listening there (`adb tcpip 5555` over USB first, "
                         "or the phone's wireless-debugging address)") from None
    except (socket.gaierror, socket.herror) as exc:
        raise InputError(f"unknown host {a!r}", "--serial", f"a resolvable host name or IP ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - timeouts, resets, protocol garbage: one line for the user
        device.close()
        if prompted:
            raise InputError("device did not accept the adb key", where,
                             f"tap 'Allow USB debugging' for key {key_info['path']} on the phone within "
                             f"{timeouts.auth_s:g} s, or pass an authorized key with --adb-key") from None
        if isinstance(exc, ae.DeviceAuthError):
            raise InputError("device requires authentication", where, "an authorized adb key") from None
        raise InputError("no device answering adb", where,
                         f"an adb daemon that completes the handshake ({type(exc).__name__}: {str(exc)[:100]})") from None
    session = PhoneSession(device, where, timeouts)
    session.key = key_info  # type: ignore[attr-defined]
    return session
