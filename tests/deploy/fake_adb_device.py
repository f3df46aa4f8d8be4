"""A fake Android phone on loopback that speaks the ADB wire protocol over TCP.

It implements the device side of what a host needs for a benchmark session, byte for byte as
adbd does it, so the real adb-shell client runs against it unmodified:

  * transport: 24-byte little-endian headers (command, arg0, arg1, length, data checksum,
    magic = command ^ 0xffffffff), CNXN with a banner and max payload;
  * AUTH: TOKEN (20 random bytes) -> SIGNATURE checked against authorised public keys
    (Android's RSAPublicKey format, PKCS#1 v1.5 over a SHA-1 DigestInfo of the raw token)
    -> CNXN, or another TOKEN; RSAPUBLICKEY is accepted only if ``accept_new_keys``
    (the user tapping "Allow"), otherwise the prompt is left unanswered, like a real phone;
  * streams: OPEN -> OKAY(local, remote); WRTE answered with OKAY; CLSE answered with CLSE;
  * `shell:<cmd>`: the command's output as WRTE packets (each waits for the host's OKAY),
    then CLSE;
  * `sync:`: SEND "path,mode" / DATA / DONE(mtime) -> OKAY, STAT -> STAT(mode, size, mtime),
    QUIT; pushed files land in ``files``.

Shell commands run in a tiny interpreter that tokenises like a POSIX shell (``shlex`` with
quotes, ``;`` and ``&&``), so a quoted argument stays one argument and an unquoted ``;`` starts a
new command; every command line and every benchmark argv is recorded. Supported: getprop,
grep -H ., cat, mkdir, chmod, sha256sum, ls, rm, echo (with ``$?``), taskset, and running a
pushed ``benchmark_model`` (answering with the text given as ``benchmark_output``).

Failure modes for tests: ``on_benchmark='hang'`` (never answers), ``'drop'`` (closes the socket),
``'partial-drop'`` (some output, then closes); ``fail_push=True`` (sync FAIL).
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import shlex
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH = (
    0x434E5953, 0x4E584E43, 0x4E45504F, 0x59414B4F, 0x45534C43, 0x45545257, 0x48545541)
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
A_VERSION = 0x01000001
HEADER = struct.Struct("<6I")
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")

DEFAULT_PROPS = {
    "ro.product.model": "Pixel 7",
    "ro.product.manufacturer": "Google",
    "ro.product.device": "panther",
    "ro.soc.model": "Tensor G2",
    "ro.soc.manufacturer": "Google",
    "ro.board.platform": "gs201",
    "ro.hardware": "panther",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.fingerprint": "google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys",
}
# zone -> (type, millidegrees or None when the kernel refuses the read)
DEFAULT_THERMAL = {0: ("cpu-0-0-usr", 41200), 1: ("gpu-usr", 38900), 2: ("battery", 31000), 3: ("tsens_tz_sensor9", None)}


class _Closed(Exception):
    pass


@dataclass
class FakeFile:
    data: bytes = b""
    mode: int = 0o644
    mtime: int = 0


@dataclass
class _Stream:
    local: int
    remote: int
    kind: str
    buf: bytearray = field(default_factory=bytearray)
    pending: tuple[str, int] | None = None  # sync SEND in progress: (path, mode)
    data: bytearray = field(default_factory=bytearray)


def decode_android_pubkey(text: str | bytes) -> tuple[int, int]:
    """(modulus, exponent) from an adbkey.pub line: base64(RSAPublicKey struct) [user@host]."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    blob = base64.b64decode(text.strip().split()[0])
    words, _n0inv, modulus, _rr, exponent = struct.unpack("<LL256s256sL", blob)
    assert words == 64
    return int.from_bytes(modulus, "little"), exponent


def verify_adb_signature(pubkey: tuple[int, int], token: bytes, signature: bytes) -> bool:
    n, e = pubkey
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = SHA1_DIGEST_INFO + token
    return em == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


class FakeAdbDevice:
    """Start with ``with FakeAdbDevice(...) as dev:``; connect to ``dev.serial`` ('127.0.0.1:PORT')."""

    def __init__(self, benchmark_output: str | Callable[[list[str]], str] = "", *, props: dict | None = None,
                 thermal: dict | None = None, authorized_keys: list[str] | None = None,
                 accept_new_keys: bool = False, on_benchmark: str = "answer", fail_push: bool = False,
                 has_sha256sum: bool = True, corrupt_push: bool = False, maxdata: int = 256 * 1024,
                 benchmark_delay_s: float = 0.0):
        self.benchmark_output = benchmark_output
        self.props = dict(DEFAULT_PROPS if props is None else props)
        self.authorized = None if authorized_keys is None else [decode_android_pubkey(k) for k in authorized_keys]
        self.accept_new_keys, self.on_benchmark, self.fail_push = accept_new_keys, on_benchmark, fail_push
        self.has_sha256sum, self.corrupt_push, self.maxdata = has_sha256sum, corrupt_push, maxdata
        self.benchmark_delay_s = benchmark_delay_s
        self.files: dict[str, FakeFile] = {}
        for zone, (kind, temp) in (DEFAULT_THERMAL if thermal is None else thermal).items():
            base = f"/sys/class/thermal/thermal_zone{zone}"
            self.files[f"{base}/type"] = FakeFile(f"{kind}\n".encode())
            self.files[f"{base}/temp"] = FakeFile(b"" if temp is None else f"{temp}\n".encode(), mode=0 if temp is None else 0o444)
        self.commands: list[str] = []
        self.benchmark_argvs: list[list[str]] = []
        self.offered_keys: list[bytes] = []
        self.connections = 0
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._next_id = 100
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAdbDevice:
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.getsockname()[1]

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            _hard_close(c)
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> FakeAdbDevice:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._server is not None
        self._server.settimeout(0.05)
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.connections += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    # ------------------------------------------------------------------ wire
    @staticmethod
    def _recv_exact(conn: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise _Closed()
            buf += chunk
        return bytes(buf)

    def _read(self, conn: socket.socket) -> tuple[int, int, int, bytes]:
        cmd, arg0, arg1, length, checksum, magic = HEADER.unpack(self._recv_exact(conn, HEADER.size))
        if magic != cmd ^ 0xFFFFFFFF:
            raise _Closed()
        data = self._recv_exact(conn, length) if length else b""
        if checksum and sum(data) & 0xFFFFFFFF != checksum:
            raise _Closed()
        return cmd, arg0, arg1, data

    @staticmethod
    def _send(conn: socket.socket, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        conn.sendall(HEADER.pack(cmd, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, cmd ^ 0xFFFFFFFF) + data)

    def _banner(self) -> bytes:
        p = self.props
        return (f"device::ro.product.name={p.get('ro.product.device', '')};ro.product.model="
                f"{p.get('ro.product.model', '')};ro.product.device={p.get('ro.product.device', '')};\0").encode()

    def _wait_okay(self, conn: socket.socket, stream: _Stream) -> None:
        while True:
            cmd, arg0, arg1, _ = self._read(conn)
            if cmd == A_OKAY and arg1 == stream.local:
                return
            if cmd == A_CLSE:
                raise _Closed()

    def _write(self, conn: socket.socket, stream: _Stream, payload: bytes) -> None:
        for i in range(0, len(payload), self.maxdata):
            self._send(conn, A_WRTE, stream.local, stream.remote, payload[i:i + self.maxdata])
            self._wait_okay(conn, stream)

    # ------------------------------------------------------------------ session
    def _serve(self, conn: socket.socket) -> None:
        authed = self.authorized is None
        token = b""
        streams: dict[int, _Stream] = {}
        try:
            while True:
                cmd, arg0, arg1, data = self._read(conn)
                if cmd == A_CNXN:
                    if authed:
                        self._send(conn, A_CNXN, A_VERSION, self.maxdata, self._banner())
                    else:
                        token = os.urandom(20)
                        self._send(conn, A_AUTH, AUTH_TOKEN, 0, token)
                elif cmd == A_AUTH and arg0 == AUTH_SIGNATURE:
                    if any(verify_adb_signature(k, token, data) for k in self.authorized or []):
                        authed = True
                        self._send(conn, A_CNXN, A_VERSION, self.maxdata, self._banner())
                    else:
                        token = os.urandom(20)
                        self._send(conn, A_AUTH, AUTH_TOKEN, 0, token)
                elif cmd == A_AUTH and arg0 == AUTH_RSAPUBLICKEY:
                    self.offered_keys.append(data.rstrip(b"\0"))
                    if self.accept_new_keys:
                        self.authorized = (self.authorized or []) + [decode_android_pubkey(data.rstrip(b"\0"))]
                        authed = True
                        self._send(conn, A_CNXN, A_VERSION, self.maxdata, self._banner())
                    # else: the prompt on the phone is never answered
                elif not authed:
                    return  # adbd drops unauthenticated traffic
                elif cmd == A_OPEN:
                    with self._lock:
                        self._next_id += 1
                        local = self._next_id
                    dest = data.rstrip(b"\0").decode("utf-8", "replace")
                    stream = _Stream(local, arg0, "sync" if dest.startswith("sync:") else "shell")
                    streams[local] = stream
                    self._send(conn, A_OKAY, local, arg0)
                    if stream.kind == "shell":
                        if not self._shell(conn, stream, dest.removeprefix("shell:")):
                            return
                elif cmd == A_WRTE:
                    stream = streams.get(arg1)
                    if stream is None:
                        self._send(conn, A_CLSE, 0, arg0)
                        continue
                    self._send(conn, A_OKAY, stream.local, stream.remote)
                    stream.buf += data
                    self._sync(conn, stream)
                elif cmd == A_CLSE:
                    stream = streams.pop(arg1, None)
                    if stream is not None:
                        self._send(conn, A_CLSE, stream.local, stream.remote)
                # OKAY for our WRTEs outside _write: nothing to do
        except (_Closed, OSError):
            pass
        finally:
            _hard_close(conn)

    # ------------------------------------------------------------------ sync service
    def _sync(self, conn: socket.socket, s: _Stream) -> None:
        while len(s.buf) >= 8:
            ident, size = s.buf[:4].decode("latin-1"), struct.unpack("<I", s.buf[4:8])[0]
            if ident in ("SEND", "STAT", "LIST", "RECV", "DATA") and len(s.buf) < 8 + size:
                return
            if ident == "SEND":
                spec = s.buf[8:8 + size].decode("utf-8")
                path, _, mode = spec.rpartition(",")
                s.pending, s.data = (path, int(mode) if mode.isdigit() else 0o644), bytearray()
                del s.buf[:8 + size]
            elif ident == "DATA":
                s.data += s.buf[8:8 + size]
                del s.buf[:8 + size]
            elif ident == "DONE":
                del s.buf[:8]
                if self.fail_push or s.pending is None:
                    msg = b"couldn't create file: Read-only file system"
                    self._write(conn, s, b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                path, mode = s.pending
                data = bytes(s.data) + (b"!" if self.corrupt_push else b"")
                self.files[path] = FakeFile(data, mode & 0o7777, size)
                s.pending = None
                self._write(conn, s, b"OKAY" + struct.pack("<I", 0))
            elif ident == "STAT":
                path = s.buf[8:8 + size].decode("utf-8")
                del s.buf[:8 + size]
                f = self.files.get(path)
                st = (0o100000 | f.mode, len(f.data), f.mtime) if f else (0, 0, 0)
                self._write(conn, s, b"STAT" + struct.pack("<3I", *st))
            elif ident == "QUIT":
                del s.buf[:8]
            else:
                msg = f"unsupported sync request {ident!r}".encode()
                del s.buf[:8 + size]
                self._write(conn, s, b"FAIL" + struct.pack("<I", len(msg)) + msg)

    # ------------------------------------------------------------------ shell service
    def _shell(self, conn: socket.socket, stream: _Stream, command: str) -> bool:
        """Run one shell line; False when the connection must drop (device gone)."""
        self.commands.append(command)
        out, action = self._execute(command)
        if action == "hang":
            return True  # never answer this stream; keep the connection (host read timeout)
        if action == "drop":
            return False
        if action == "partial-drop":
            self._write(conn, stream, out.encode()[: max(1, len(out) // 3)])
            return False
        if out:
            self._write(conn, stream, out.encode())
        self._send(conn, A_CLSE, stream.local, stream.remote)
        return True

    def _tokens(self, line: str) -> list[str]:
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        return list(lex)

    def _glob(self, tokens: list[str]) -> list[str]:
        out = []
        for t in tokens:
            if t.startswith("/sys/") and "*" in t:
                hits = sorted(p for p in self.files if fnmatch.fnmatchcase(p, t))
                out.extend(hits or [t])
            else:
                out.append(t)
        return out

    def _execute(self, line: str) -> tuple[str, str]:
        tokens = self._tokens(line)
        out, status, run_next = [], 0, True
        cmd: list[str] = []
        for tok in tokens + [";"]:
            if tok in (";", "&&"):
                if cmd and run_next:
                    text, status, action = self._run(self._glob([t.replace("$?", str(status)) for t in cmd]))
                    out.append(text)
                    if action != "answer":
                        return "".join(out), action
                run_next = tok == ";" or status == 0
                cmd = []
            else:
                cmd.append(tok)
        return "".join(out), "answer"

    def _run(self, argv: list[str]) -> tuple[str, int, str]:
        name, args = argv[0], argv[1:]
        if name == "taskset":
            if len(args) < 2:
                return "taskset: usage\n", 1, "answer"
            return self._run(args[1:])
        if name == "getprop":
            if args:
                return self.props.get(args[0], "") + "\n", 0, "answer"
            return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())), 0, "answer"
        if name == "echo":
            return " ".join(args) + "\n", 0, "answer"
        if name == "mkdir":
            for p in (a for a in args if not a.startswith("-")):
                self.files.setdefault(p.rstrip("/") + "/", FakeFile(mode=0o771))
            return "", 0, "answer"
        if name == "chmod":
            mode, paths, text, status = int(args[0], 8), args[1:], "", 0
            for p in paths:
                if p in self.files:
                    self.files[p].mode = mode
                else:
                    text, status = text + f"chmod: {p}: No such file or directory\n", 1
            return text, status, "answer"
        if name in ("cat", "grep"):
            files = [a for a in args if a.startswith("/")]
            text, status = "", 0
            for p in files:
                f = self.files.get(p)
                if f is None or f.mode == 0:
                    reason = "No such file or directory" if f is None else "Invalid argument"
                    text, status = text + f"{name}: {p}: {reason}\n", 1
                    continue
                body = f.data.decode("utf-8", "replace")
                text += "".join(f"{p}:{ln}\n" for ln in body.splitlines()) if name == "grep" else body
            return text, status, "answer"
        if name == "sha256sum":
            if not self.has_sha256sum:
                return "/system/bin/sh: sha256sum: inaccessible or not found\n", 127, "answer"
            text = ""
            for p in args:
                f = self.files.get(p)
                text += f"{hashlib.sha256(f.data).hexdigest()}  {p}\n" if f else f"sha256sum: {p}: No such file or directory\n"
            return text, 0, "answer"
        if name == "ls":
            return "".join(f"{p}\n" for p in sorted(self.files) if not args or any(p.startswith(a) for a in args)), 0, "answer"
        if name == "rm":
            for p in args:
                self.files.pop(p, None)
            return "", 0, "answer"
        f = self.files.get(name)
        if f is None:
            return f"/system/bin/sh: {name}: inaccessible or not found\n", 127, "answer"
        if not f.mode & 0o111:
            return f"/system/bin/sh: {name}: can't execute: Permission denied\n", 126, "answer"
        if name.rsplit("/", 1)[-1].startswith("benchmark_model"):
            return self._benchmark(argv)
        return "", 0, "answer"

    def _benchmark(self, argv: list[str]) -> tuple[str, int, str]:
        self.benchmark_argvs.append(list(argv))
        if self.on_benchmark in ("hang", "drop"):
            return "", 0, self.on_benchmark
        graph = next((a.split("=", 1)[1] for a in argv if a.startswith("--graph=")), None)
        if graph is None or graph not in self.files:
            return (f"INFO: STARTING!\nERROR: Could not open '{graph}'.\nERROR: Failed to mmap model {graph}\n", 1,
                    "answer")
        if self.benchmark_delay_s:
            time.sleep(self.benchmark_delay_s)
        text = self.benchmark_output(argv) if callable(self.benchmark_output) else self.benchmark_output
        for path, f in self.files.items():  # the phone warms up while benchmarking
            if path.endswith("/temp") and f.mode:
                f.data = f"{int(f.data) + 4000}\n".encode()
        return text, 0, "partial-drop" if self.on_benchmark == "partial-drop" else "answer"


def _hard_close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
