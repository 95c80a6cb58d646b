"""Structure-aware fuzz harnesses: one per parser of outside input, shared by the bounded
in-suite tests (tests/fuzz/test_*.py) and the long runs of benchmarks/fuzz.py.

Each harness is a Hypothesis strategy that builds inputs shaped like the real thing (JSON
objects with the schema's keys and hostile values, signed manifests with hostile fields,
COBS frames with valid CRCs around hostile payloads, byte mutations of a real .tflite, RIFF
headers with hostile fields, TOML documents with the known keys) plus a `target` that feeds
one input to the product's real entry point. The property everywhere: the target returns, or
raises a `KeywireError` subclass with a one-line message; any other exception (or a
multi-line message) is a failure.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import struct
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

from hypothesis import strategies as st

from keywire.protocol.errors import KeywireError

REPO = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO / "training" / "models" / "on_off" / "on_off.tflite"
OTHER_MODEL_PATH = REPO / "training" / "models" / "speech12" / "speech12.tflite"
RECIPES = sorted((REPO / "training" / "models").glob("*/recipe.toml")) + sorted((REPO / "training" / "recipes").glob("*.toml"))
FLEET = "fz"
DEVICE = "dev1"


@dataclass(frozen=True)
class Harness:
    name: str
    strategy: Callable[[], st.SearchStrategy]
    target: Callable[[Any], None]


class _LoggedTracebacks(logging.Handler):
    """Collects log records that carry a traceback: a daemon that catches everything and logs
    `exception()` has still met an input it did not expect."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None and not issubclass(record.exc_info[0], KeywireError):
            self.records.append(record)


def failure_of(h: Harness, value: Any) -> Optional[str]:
    """None when `h.target(value)` succeeded or raised a one-line KeywireError (and logged no
    traceback); otherwise a short signature of the failure (exception type and where)."""
    logged = _LoggedTracebacks()
    root = logging.getLogger()
    root.addHandler(logged)
    try:
        failure = _run(h, value)
    finally:
        root.removeHandler(logged)
    if failure is None and logged.records:
        r = logged.records[0]
        exc = r.exc_info[1] if r.exc_info else None
        return f"logged traceback ({r.getMessage()[:60]}): {type(exc).__name__}: {str(exc)[:100]}"
    return failure


def _run(h: Harness, value: Any) -> Optional[str]:
    try:
        h.target(value)
    except KeywireError as exc:
        if "\n" in str(exc):
            return f"{type(exc).__name__} with a multi-line message: {str(exc)[:120]!r}"
        return None
    except Exception as exc:  # noqa: BLE001 - anything else is what the fuzzers look for
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb)
                      if "/site-packages/" not in f.filename), "?")
        return f"{type(exc).__name__} at {where}: {str(exc)[:120]}"
    return None


def check(h: Harness, value: Any) -> None:
    """Assert the property for one input (used by the in-suite tests)."""
    failure = failure_of(h, value)
    assert failure is None, f"{h.name}: {failure}\ninput: {value!r}"[:4000]


# ---------------------------------------------------------------- hostile values
_BIG = [2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64, 2 ** 70, -1, -(2 ** 63), 0, 1, 255, 256, 10 ** 12]


def hostile_scalars() -> st.SearchStrategy:
    return st.one_of(
        st.integers(min_value=-(2 ** 80), max_value=2 ** 80), st.sampled_from(_BIG),
        st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e308, 1e-320, 0.5, -0.0]),
        st.booleans(), st.none(), st.text(max_size=40),
        st.sampled_from(["", "\x1b[2J", "a\nb", "../../etc/passwd", "0" * 64, "f" * 64, "../" * 21 + "x",
                         "nan", "inf", "1e400", "\u202e", "yes", "microfrontend", "mfcc"]))


def hostile_values() -> st.SearchStrategy:
    return st.recursive(hostile_scalars(),
                        lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                        max_leaves=12)


def shaped_object(valid: dict[str, Any], max_changes: Optional[int] = None) -> st.SearchStrategy:
    """Objects with the keys of a valid message, some values replaced or removed."""
    keys = sorted(valid)

    @st.composite
    def build(draw: Callable) -> dict[str, Any]:
        obj = dict(valid)
        for k in draw(st.lists(st.sampled_from(keys), max_size=max_changes or len(keys), unique=True)):
            if draw(st.integers(0, 5)) == 0:
                obj.pop(k, None)
            else:
                obj[k] = draw(hostile_values())
        if draw(st.integers(0, 4)) == 0:
            obj[draw(st.text(max_size=8))] = draw(hostile_values())
        return obj
    return build()


def json_payloads(valid: dict[str, Any]) -> st.SearchStrategy:
    """Bytes on an MQTT topic: shaped JSON objects, mutations of the valid one, or garbage."""
    raw = json.dumps(valid).encode()
    return st.one_of(
        shaped_object(valid).map(lambda o: json.dumps(o, allow_nan=True).encode()),
        mutated_bytes(raw, max_edits=4),
        st.binary(max_size=300),
        st.sampled_from([b"", b"null", b"[]", b"{}", b"1e999", b"[" * 5000 + b"]" * 5000, b'{"v":1}',
                         b'\xff\xfe', json.dumps({"v": 1, "type": valid.get("type")}).encode()]))


def mutated_bytes(seed: bytes, max_edits: int = 8) -> st.SearchStrategy:
    """`seed` with a few flipped bits, overwritten words (extreme values), cuts and insertions."""
    words = [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00",
             b"\x00\x00\x01\x00"]

    @st.composite
    def build(draw: Callable) -> bytes:
        b = bytearray(seed)
        for _ in range(draw(st.integers(1, max_edits))):
            kind = draw(st.integers(0, 4))
            pos = draw(st.integers(0, max(0, len(b) - 1)))
            if kind == 0 and b:
                b[pos] ^= 1 << draw(st.integers(0, 7))
            elif kind == 1:
                b[pos:pos + 4] = draw(st.sampled_from(words))
            elif kind == 2:
                del b[pos:]
            elif kind == 3:
                b[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            else:
                b[pos:pos + 2] = draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x00\x80"]))
        return bytes(b)
    return build()


# ---------------------------------------------------------------- shared resources
@lru_cache(maxsize=1)
def model_bytes() -> bytes:
    return MODEL_PATH.read_bytes()


@lru_cache(maxsize=1)
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="keywire-fuzz-"))


@lru_cache(maxsize=1)
def signing_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


@lru_cache(maxsize=1)
def valid_manifest() -> Any:
    from keywire.protocol.manifest import build_manifest

    return build_manifest(model_bytes(), signing_key(), chunk_size=16 * 1024, issued_at=time.time())


# ---------------------------------------------------------------- MQTT: the agent's topics
def _command_target(payload: bytes) -> None:
    """`.../cmd`: decode, then apply a set_detection to the model's settings and a detector."""
    import numpy as np

    from keywire.agent.detector import Detector
    from keywire.protocol.messages import Command

    cmd = Command.from_json(payload)
    if cmd.action == "set_detection":
        m = _model()
        settings, _ = cmd.overrides().resolve(m.detection, len(m.classes))
        det = Detector(m.classes, settings)
        for t in range(0, 3000, 100):
            det.process(t, np.full(len(m.classes), 250, dtype=np.uint8))


@lru_cache(maxsize=1)
def _model() -> Any:
    from keywire.agent.model import KeywordModel

    return KeywordModel.from_bytes(model_bytes())


def _command_strategy() -> st.SearchStrategy:
    valid = {"v": 1, "type": "command", "action": "set_detection", "id": "abc",
             "detection": {"detection_threshold": 200, "average_window_duration_ms": 1000, "suppression_ms": 500,
                           "minimum_count": 2, "detection_threshold_list": [200, 200, 200, 200], "latency_ms": 100}}
    detection = shaped_object(valid["detection"])
    shaped = st.builds(lambda d, a: json.dumps({**valid, "action": a, "detection": d}, allow_nan=True).encode(),
                       detection, st.sampled_from(["set_detection", "reload", "status", "rollback", "x"]))
    return st.one_of(shaped, json_payloads(valid))


class _Recorder:
    """The receiver's transport: records what a device would publish and subscribe."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.subscribed: set[str] = set()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> object:
        self.published.append((topic, payload))
        del self.published[:-100]
        return None

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribed.add(topic)

    def unsubscribe(self, topic: str) -> None:
        self.subscribed.discard(topic)


def _receiver() -> Any:
    """A device's push receiver over a real model store in a fresh state dir."""
    from keywire.agent.fleet.receiver import PushReceiver
    from keywire.agent.fleet.selftest import DeviceProfile
    from keywire.agent.fleet.store import ModelStore
    from keywire.agent.model import KeywordModel
    from keywire.protocol.messages import ModelInfo
    from keywire.protocol.signing import key_id
    from keywire.protocol.topics import DeviceTopics

    state = Path(tempfile.mkdtemp(dir=workdir()))
    store = ModelStore(state)
    other = OTHER_MODEL_PATH.read_bytes()  # the device runs another model: pushes of MODEL_PATH are new
    m = KeywordModel.from_bytes(other)
    store.adopt(other, ModelInfo(m.name, m.version, m.sha256, m.classes))

    def activate(data: bytes, manifest: Any) -> str:
        KeywordModel.from_bytes(data)  # the self-test's first step: it loads
        return "ok"

    pub = signing_key().public_key()
    return PushReceiver(DeviceTopics(FLEET, DEVICE), ("g1",), store, {key_id(pub): pub}, DeviceProfile,
                        _Recorder(), activate, lambda progress: None)


_MANIFEST_FIELDS = ("name", "version", "size", "sha256", "chunk_size", "chunks", "classes", "frontend",
                    "input_shape", "issued_at", "key_id", "detection")


def _manifest_strategy() -> st.SearchStrategy:
    """(topic suffix, payload, re-sign): signed manifests with hostile fields, or raw bytes."""
    valid = valid_manifest().to_dict()
    signed = st.tuples(st.sampled_from(["device", "group", "all"]), shaped_object(
        {k: valid[k] for k in _MANIFEST_FIELDS} | {"v": 1, "type": "manifest"}, max_changes=2), st.just(True))
    unsigned = st.tuples(st.sampled_from(["device", "group", "all"]), json_payloads(valid), st.just(False))
    return st.one_of(signed, unsigned)


def _desired_topic(kind: str) -> str:
    return {"device": f"keywire/{FLEET}/device/{DEVICE}/desired", "group": f"keywire/{FLEET}/group/g1/desired",
            "all": f"keywire/{FLEET}/all/desired"}[kind]


def manifest_payload(value: tuple) -> tuple[str, bytes]:
    """(desired topic kind, payload) of a manifest input, re-signed by the trusted key when shaped."""
    kind, body, resign = value
    if not resign:
        return kind, body
    body = dict(body, signature="")
    body["signature"] = _signature_for(body)
    return kind, json.dumps(body, allow_nan=True).encode()


def _manifest_target(value: tuple) -> None:
    """`.../desired`: a manifest to a receiver."""
    kind, payload = manifest_payload(value)
    _receiver_cached().handle_desired(_desired_topic(kind), payload)


def _signature_for(body: dict) -> str:
    """A valid signature by the trusted key over what `Manifest.signed_bytes` covers, so the
    hostile fields get past the signature check (any signature will do if it does not decode)."""
    from keywire.protocol import signing
    from keywire.protocol.manifest import Manifest

    body["key_id"] = signing.key_id(signing_key().public_key())
    try:
        m = Manifest.from_dict(body)
    except KeywireError:
        return ""
    return signing.sign(m.signed_bytes(), signing_key())


_RECEIVERS: list = []


def _receiver_cached() -> Any:
    """One receiver per 200 inputs: state carries over between inputs like on a device."""
    if not _RECEIVERS or _RECEIVERS[0][1] >= 200:
        _RECEIVERS[:] = [[_receiver(), 0]]
    _RECEIVERS[0][1] += 1
    return _RECEIVERS[0][0]


def _chunk_strategy() -> st.SearchStrategy:
    m = valid_manifest()
    index = st.one_of(st.integers(-3, m.n_chunks + 3).map(str), st.text(max_size=12), st.sampled_from(["1e3", " 1", "0x1", "\u0661", "99999999999999999999"]))
    sha = st.one_of(st.just(m.sha256), st.sampled_from(["0" * 64, "x", ""]))
    data = model_bytes()
    chunk = st.one_of(st.integers(0, m.n_chunks - 1).map(lambda i: data[i * m.chunk_size:(i + 1) * m.chunk_size]),
                      st.binary(max_size=64), st.integers(0, m.n_chunks - 1).flatmap(
                          lambda i: mutated_bytes(data[i * m.chunk_size:(i + 1) * m.chunk_size], 2)))
    return st.tuples(sha, index, chunk, st.sampled_from(["chunk", "chunks", ""]))


def _chunk_target(value: tuple) -> None:
    """`.../model/<sha>/chunk/<i>`: chunks (good, bad, misnamed) for a transfer in progress."""
    sha, index, payload, word = value
    r = _receiver_cached()
    if r.transferring is None:
        r.handle_desired(_desired_topic("all"), valid_manifest().to_json())
    r.handle_chunk(f"keywire/{FLEET}/model/{sha}/{word}/{index}", payload)


# ---------------------------------------------------------------- MQTT: the host's topics
def _host_strategy() -> st.SearchStrategy:
    now = time.time()
    samples = {
        "status": {"v": 1, "type": "status", "device_id": "d", "online": True, "time": now,
                   "model": {"name": "m", "version": "1", "sha256": "a" * 64, "classes": ["yes"]},
                   "groups": ["g"], "reason": "", "detection": {"detection_threshold": 1}, "last_push": {}},
        "telemetry": {"v": 1, "type": "telemetry", "device_id": "d", "time": now, "interval_s": 1.0,
                      "detections_per_hour": {"yes": 1.0}, "detections_total": {"yes": 1}, "spool_pending": 0},
        "push": {"v": 1, "type": "progress", "device_id": "d", "sha256": "a" * 64, "state": "receiving",
                 "received": 1, "total": 2, "reason": ""},
        "reply": {"v": 1, "type": "reply", "device_id": "d", "action": "status", "ok": True, "id": "x"},
        "event": {"v": 1, "type": "detection", "event_id": "0" * 32, "device_id": "d", "keyword": "yes",
                  "class_index": 0, "score": 200, "time_ms": 1, "wall_time": now, "monotonic": 1.0,
                  "model_name": "m", "model_version": "1", "model_sha256": "a" * 64, "source": "mic"},
    }
    return st.sampled_from(sorted(samples)).flatmap(lambda k: st.tuples(st.just(k), json_payloads(samples[k])))


def _host_target(value: tuple) -> None:
    """What `fleet status`, `push` and `watch` do with a device's message: decode and show it."""
    from keywire.host.fleet_view import DeviceRow, format_detection, format_rows
    from keywire.protocol.messages import Detection, Progress, Reply, Status, Telemetry

    kind, payload = value
    cls = {"status": Status, "telemetry": Telemetry, "push": Progress, "reply": Reply, "event": Detection}[kind]
    msg = cls.from_json(payload)
    if kind == "status":
        format_rows([DeviceRow(msg.device_id, msg.online, msg.model.name if msg.model else "", "", "", msg.time,
                               0.0, msg.groups, msg.reason)])
    elif kind == "event":
        format_detection(msg)
    elif kind == "telemetry":
        round(sum(msg.detections_per_hour.values()), 2)


# ---------------------------------------------------------------- serial frames
def _frame_strategy() -> st.SearchStrategy:
    from keywire.agent.board import frame as fr
    from keywire.agent.board import messages as bm

    u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
    boot = st.one_of(st.just(BOOT_ID), u32)
    hello = st.builds(bm.Hello, u8, st.tuples(u8, u8, u8), u8, boot, u32, st.one_of(st.just(16000), u16), u8,
                      st.text(max_size=40), st.text(max_size=40), u32, u32)
    detection = st.builds(bm.DetectionMsg, boot, u32, u32, u8, u8, st.text(max_size=40))
    typed = st.tuples(st.one_of(hello, detection), u16).map(lambda t: t[0].to_frame(t[1]))
    types = sorted(bm.MESSAGE_TYPES)
    framed = st.builds(lambda t, seq, payload, version: _frame(t, seq, payload, version),
                       st.one_of(st.sampled_from(types), st.integers(0, 255)), u16,
                       st.binary(max_size=fr.MAX_PAYLOAD + 8), st.sampled_from([fr.PROTOCOL_VERSION] * 6 + [0, 2, 255]))
    valid = [m.to_frame(1) for m in (bm.Ping(), bm.GetInfo())]
    stream = st.lists(st.one_of(typed, framed, st.binary(max_size=64), st.sampled_from(valid),
                                st.sampled_from(valid).flatmap(lambda v: mutated_bytes(v, 2))), max_size=8)
    first = bm.Hello(board_id="brd", model_name="m", boot_id=BOOT_ID).to_frame(0)
    return stream.map(lambda parts: first + b"".join(parts))


BOOT_ID = 7


def _frame(msg_type: int, seq: int, payload: bytes, version: int) -> bytes:
    from keywire.agent.board import frame as fr

    raw = struct.pack("<BBH", version, msg_type, seq) + payload
    raw += struct.pack("<I", zlib.crc32(raw))
    return fr.cobs_encode(raw) + b"\x00"


def _frame_target(data: bytes) -> None:
    """What the agent does with a board's byte stream: frames, typed messages, and the board
    component turning detections into `Detection` events (serialised as for MQTT)."""
    from keywire.agent.board import frame as fr
    from keywire.agent.board import messages as bm
    from keywire.agent.board.component import BoardComponent
    from keywire.agent.board.link import BoardLink
    from keywire.agent.board.link_settings import BoardSpec, LinkSettings

    spec = BoardSpec.parse("serial:/dev/null")
    comp = BoardComponent(spec, bm.Mode.DETECT, DEVICE)
    comp.link = BoardLink(spec, LinkSettings(request_timeout_s=0.001, request_retries=0),  # never opened
                          on_detection=comp._on_detection, on_event=comp._on_event)
    comp._relay = lambda det: det.to_json()
    dec = fr.FrameDecoder()  # fed in two pieces, as a serial port delivers
    for f in list(dec.feed(data[:len(data) // 3])) + list(dec.feed(data[len(data) // 3:])):
        comp.link._on_frame(f, time.monotonic())
        if f.error is None:
            try:
                bm.decode(f).to_frame(f.seq)  # what was decoded can be encoded again
            except bm.ProtocolError:
                pass


# ---------------------------------------------------------------- model files
def _model_strategy() -> st.SearchStrategy:
    return mutated_bytes(model_bytes(), max_edits=6)


def _model_target(data: bytes) -> None:
    """A pushed or local model file: the agent's loader and `keywire summarize`."""
    from keywire.agent.model import KeywordModel
    from keywire.host.summary import summarize

    try:
        KeywordModel.from_bytes(data)
    finally:
        path = workdir() / "model.tflite"
        path.write_bytes(data)
        summarize(path)


# ---------------------------------------------------------------- WAV headers
def _wav_strategy() -> st.SearchStrategy:
    u16 = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 2, 3, 0xFFFE, 8, 16, 24, 32, 64, 0xFFFF]))
    u32 = st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from([0, 1, 8000, 16000, 44100, 0xFFFFFFFF, 0x7FFFFFFF]))
    fmt_body = st.builds(lambda tag, ch, rate, brate, align, bits, ext:
                         struct.pack("<HHIIHH", tag, ch, rate, brate, align, bits) + ext,
                         st.sampled_from([1, 3, 0xFFFE, 2, 0]) | u16, st.sampled_from([1, 2, 0, 6]) | u16,
                         st.sampled_from([16000, 8000, 44100, 0, 1]) | u32, u32, u16,
                         st.sampled_from([16, 8, 24, 32, 64, 0, 7]) | u16,
                         st.one_of(st.just(b""), st.binary(max_size=30),
                                   st.builds(lambda t: struct.pack("<HHI", 22, 16, 0) + struct.pack("<H", t) + b"\x00" * 14,
                                             st.sampled_from([1, 3, 7]) | u16)))

    @st.composite
    def build(draw: Callable) -> bytes:
        chunks = []
        for _ in range(draw(st.integers(0, 4))):
            cid = draw(st.sampled_from([b"fmt ", b"data", b"LIST", b"fact", b"JUNK"]))
            body = draw(fmt_body) if cid == b"fmt " else draw(st.binary(max_size=200))
            size = draw(st.one_of(st.just(len(body)), u32))
            chunks.append(cid + struct.pack("<I", size) + body)
        riff = draw(st.sampled_from([b"RIFF", b"RIFX", b"RIFF"]))
        body = b"WAVE" + b"".join(chunks)
        data = riff + struct.pack("<I", draw(st.one_of(st.just(len(body)), u32))) + body
        cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
        return data if cut is None else data[:cut]
    return build()


def _wav_target(data: bytes) -> None:
    """A WAV file given to `--source file:`, `features`, `evaluate`: read it whole, resampled."""
    from keywire.agent.audio_io import read_wav
    from keywire.agent.sources import open_source

    path = workdir() / "clip.wav"
    path.write_bytes(data)

    def streamed() -> None:  # `keywire-agent run --source file:` reads it in chunks
        src = open_source(f"file:{path}", 16000, realtime=False)
        src.open()
        try:
            for _ in range(10000):
                if src.read(1600) is None:
                    break
        finally:
            src.close()

    refused: list[KeywireError] = []
    for read in (lambda: read_wav(path, 16000), streamed):  # each path on its own
        try:
            read()
        except KeywireError as exc:
            refused.append(exc)
    if refused:
        raise refused[0]


# ---------------------------------------------------------------- TOML: recipes and agent config
def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return '""'


def toml_doc(top: dict[str, Any], tables: dict[str, dict[str, Any]]) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in top.items() if v is not None]
    for name, body in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in body.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_strategy(top_keys: list[str], tables: dict[str, list[str]], seeds: list[bytes]) -> st.SearchStrategy:
    toml_scalars = st.one_of(hostile_scalars(), st.floats(), st.lists(hostile_scalars(), max_size=4))

    @st.composite
    def build(draw: Callable) -> bytes:
        top = {k: draw(toml_scalars) for k in draw(st.lists(st.sampled_from(top_keys), max_size=5, unique=True))}
        tabs = {}
        for t in draw(st.lists(st.sampled_from(sorted(tables)), max_size=3, unique=True)):
            tabs[t] = {k: draw(toml_scalars) for k in draw(st.lists(st.sampled_from(tables[t]), max_size=4, unique=True))}
        return toml_doc(top, tabs).encode()
    parts = [build()]
    if seeds:
        parts.append(st.sampled_from(seeds).flatmap(lambda s: mutated_bytes(s, 3)))
    parts.append(st.binary(max_size=100))
    return st.one_of(*parts)


def _recipe_strategy() -> st.SearchStrategy:
    from keywire.training.recipe import AugmentationSettings, Recipe

    top = [f.name for f in dataclasses.fields(Recipe) if f.name not in ("frontend", "augmentation", "detection")]
    fe = ["window_size_ms", "window_step_ms", "filterbank_n_channels", "sample_rate_hz", "sample_length_ms",
          "filterbank_lower_band_limit", "filterbank_upper_band_limit", "noise_reduction_smoothing_bits",
          "pcan_enable", "log_scale_shift", "frontend_type", "quantize_dynamic_scale_enable", "type"]
    tables = {"frontend": fe, "augmentation": [f.name for f in dataclasses.fields(AugmentationSettings)],
              "detection": ["detection_threshold", "detection_threshold_list", "average_window_duration_ms",
                            "suppression_ms", "minimum_count", "latency_ms"]}
    return _toml_strategy(top, tables, [p.read_bytes() for p in RECIPES[:3]])


def _recipe_target(data: bytes) -> None:
    from keywire.training.recipe import load_recipe

    path = workdir() / "recipe.toml"
    path.write_bytes(data)
    load_recipe(path)


def _config_strategy() -> st.SearchStrategy:
    from keywire.agent.config import AgentConfig, BoardConfig, LedConfig, MqttConfig

    top = [f.name for f in dataclasses.fields(AgentConfig) if f.name not in ("detection", "led", "mqtt", "board")]
    tables = {"mqtt": [f.name for f in dataclasses.fields(MqttConfig)],
              "led": [f.name for f in dataclasses.fields(LedConfig)],
              "board": [f.name for f in dataclasses.fields(BoardConfig)],
              "detection": ["detection_threshold", "detection_threshold_list", "average_window_duration_ms",
                            "suppression_ms", "minimum_count", "latency_ms", "volume_gain", "threshold"]}
    seed = toml_doc({"model": str(MODEL_PATH), "device_id": "kitchen", "state_dir": str(workdir() / "state")},
                    {"mqtt": {"url": "mqtt://127.0.0.1:1", "fleet": "home", "telemetry_s": 60},
                     "detection": {"detection_threshold": 200}}).encode()
    return _toml_strategy(top, tables, [seed])


def _config_target(data: bytes) -> None:
    """`keywire-agent run --config FILE`: read, merge, validate, and the fleet's view of it."""
    from keywire.agent.config import build_config, load_config_file

    path = workdir() / "agent.toml"
    path.write_bytes(data)
    cfg = build_config(load_config_file(path), {}, str(path))
    if cfg.mqtt.url and cfg.state_dir:
        from keywire.agent.fleet.service import FleetConfig

        FleetConfig.from_agent_config(cfg)


# ---------------------------------------------------------------- the event spool on disk
@lru_cache(maxsize=1)
def _spool_file() -> tuple[bytes, tuple[tuple[int, int, bytes], ...]]:
    """A real 10-record spool log and each record's (start, end, payload)."""
    from keywire.agent.fleet.spool import LOG_NAME, Spool

    d = Path(tempfile.mkdtemp(dir=workdir()))
    s = Spool(d, fsync=False)
    recs = [s.append(f"keywire/{FLEET}/device/{DEVICE}/event", json.dumps({"event_id": f"{i:032x}"}).encode())
            for i in range(10)]
    s.close()
    data = (d / LOG_NAME).read_bytes()
    spans, pos = [], len(data) - sum(len(r.encode()) for r in recs)
    for r in recs:
        spans.append((pos, pos + len(r.encode()), r.payload))
        pos += len(r.encode())
    return data, tuple(spans)


def _spool_strategy() -> st.SearchStrategy:
    data, _ = _spool_file()
    return st.tuples(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), min_size=1, max_size=3),
                     st.one_of(st.just(b""), st.binary(max_size=40)), st.integers(0, 40))


def _spool_target(value: tuple) -> None:
    """A damaged spool log (flipped bytes, garbage appended or the tail cut): every record the
    damage did not touch is read back, in order; nothing else."""
    from keywire.agent.fleet.spool import LOG_NAME, Spool

    flips, tail, cut = value
    data, spans = _spool_file()
    b = bytearray(data)
    for pos, mask in flips:
        b[pos] ^= mask
    hit = {p for p, _ in flips if b[p] != data[p]}   # two flips of one byte may cancel
    b = b[:len(b) - cut] + tail
    d = Path(tempfile.mkdtemp(dir=workdir()))
    (d / LOG_NAME).write_bytes(bytes(b))
    s = Spool(d, fsync=False)
    got = [r.payload for r in s.pending()]
    s.close()
    intact = [payload for start, end, payload in spans
              if not any(start <= p < end for p in hit) and end <= len(data) - cut]
    if got != intact:
        raise AssertionError(f"spool kept {len(got)} records, {len(intact)} were intact")


HARNESSES: dict[str, Harness] = {h.name: h for h in (
    Harness("mqtt_command", _command_strategy, _command_target),
    Harness("mqtt_manifest", _manifest_strategy, _manifest_target),
    Harness("mqtt_chunk", _chunk_strategy, _chunk_target),
    Harness("mqtt_host", _host_strategy, _host_target),
    Harness("serial_frames", _frame_strategy, _frame_target),
    Harness("model_file", _model_strategy, _model_target),
    Harness("wav_header", _wav_strategy, _wav_target),
    Harness("recipe_toml", _recipe_strategy, _recipe_target),
    Harness("agent_config_toml", _config_strategy, _config_target),
    Harness("event_spool", _spool_strategy, _spool_target),
)}
