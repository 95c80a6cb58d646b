"""Wire forms: every message round-trips, malformed input is one MessageError, signatures bind."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest

from keywire.protocol.errors import ConfigError, MessageError, ModelError, SignatureError
from keywire.protocol.manifest import Manifest, build_manifest, split
from keywire.protocol.messages import Command, ModelInfo, Progress, Reply, Status, Telemetry
from keywire.protocol.signing import generate_keys, load_private_key, load_public_key, trusted_keys
from keywire.protocol.topics import DeviceTopics, FleetTopics

SAMPLES = [
    Status("d1", True, 1.5, ModelInfo("m", "1", "a" * 64, ("yes", "no")), None, {"detection_threshold": 200},
           3.0, "0.1.0", ("kitchen",), {"sha256": "b" * 64, "state": "active"}, ""),
    Telemetry("d1", 2.0, 60.0, -40.0, 0.5, 9.9, 1.2, 3.4, {"yes": 2.0}, {"yes": 2}, 0, 12.5, 10_000_000, 3),
    Progress("d1", "c" * 64, "receiving", 3, 8, "", "2", 4.0),
    Command("set_detection", "x1", {"detection_threshold": 190, "suppression_ms": 900}),
    Reply("d1", "rollback", False, "x2", "no previous model", 5.0),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    wire = msg.to_json()
    obj = json.loads(wire)
    assert obj["v"] == 1 and obj["type"] == msg.TYPE
    assert type(msg).from_json(wire) == msg


@pytest.mark.parametrize("cls", [Status, Telemetry, Progress, Command, Reply, Manifest])
@pytest.mark.parametrize("payload", [b"", b"\xff\xfe\x00garbage", os.urandom(64), b"[1,2]", b'"text"', b"{}",
                                     b'{"v": 2, "type": "status"}', b'{"v": 1, "type": "other"}', b"{" * 5000,
                                     b"x" * 300_000])
def test_malformed_is_one_message_error(cls, payload):
    with pytest.raises(MessageError):
        cls.from_json(payload)


def test_field_types_are_checked():
    good = json.loads(SAMPLES[2].to_json())
    for field, bad in (("received", "3"), ("state", "exploded"), ("sha256", 5), ("received", True)):
        with pytest.raises(MessageError, match=field if field != "state" else "state"):
            Progress.from_dict({**good, field: bad})
    with pytest.raises(MessageError, match="unknown command"):
        Command.from_json(b'{"v":1,"type":"command","action":"exec","detection":{}}')
    with pytest.raises(MessageError, match="unknown detection setting"):
        Command.from_json(b'{"v":1,"type":"command","action":"set_detection","detection":{"shell":"rm"}}').overrides()
    with pytest.raises(MessageError, match=r"suppression_ms = 1180591620717411303424 is out of range 0\.\.60000"):
        Command("set_detection", "x", {"suppression_ms": 2 ** 70}).overrides()
    assert Command("set_detection", "x", {"latency_ms": 200}).overrides().latency_ms == 200


def test_topics():
    d = DeviceTopics("home", "kitchen-pi")
    assert d.event == "keywire/home/device/kitchen-pi/event"
    assert FleetTopics.device_of(d.status) == "kitchen-pi"
    assert FleetTopics("home").chunk("ab", 3) == "keywire/home/model/ab/chunk/3"
    t = FleetTopics("home")
    assert t.model_of_chunk(t.chunk("ab", 3)) == "ab"
    assert t.model_of_chunk(FleetTopics("other").chunk("ab", 3)) == "" and t.model_of_chunk(t.desired_all()) == ""
    assert t.all_desired() == ("keywire/home/all/desired", "keywire/home/group/+/desired",
                               "keywire/home/device/+/desired")
    for bad in ("", "a/b", "+", "#", "x" * 65, "a b"):
        with pytest.raises(ConfigError):
            DeviceTopics("home", bad)


def test_manifest_signature_binds_every_field(tmp_path, fleet_models):
    priv, pub = generate_keys(tmp_path / "k")
    other, _ = generate_keys(tmp_path / "other")
    trusted = trusted_keys([pub])
    data = fleet_models.base.read_bytes()
    m = build_manifest(data, load_private_key(priv), chunk_size=10_000)
    m2 = Manifest.from_json(m.to_json())
    m2.verify(trusted)
    assert m2.n_chunks == -(-len(data) // 10_000) and m2.classes == ("yes", "no", "_unknown_", "_silence_")
    assert [len(c) for c in split(data, 10_000)][-1] == m2.chunk_length(m2.n_chunks - 1)
    for change in ({"version": "9"}, {"size": m.size + 1}, {"frontend": {**m.frontend, "fe.window_step_ms": 10}},
                   {"issued_at": m.issued_at + 1}, {"classes": ("a", "b", "c", "d")}):
        with pytest.raises(SignatureError, match="invalid"):
            dataclasses.replace(m, **change).verify(trusted)
    with pytest.raises(SignatureError, match="not signed"):
        dataclasses.replace(m, signature="").verify(trusted)
    with pytest.raises(SignatureError, match="untrusted"):
        build_manifest(data, load_private_key(other)).verify(trusted)
    assert load_public_key(pub)


def test_keys_refuse_overwrite_and_private_key_is_private(tmp_path):
    priv, _ = generate_keys(tmp_path)
    assert (priv.stat().st_mode & 0o777) == 0o600
    with pytest.raises(ConfigError, match="already exists"):
        generate_keys(tmp_path)


def test_mqtt_settings_from_url():
    from keywire.protocol.mqtt_link import MqttSettings

    assert MqttSettings("mqtt://broker.lan").endpoint() == ("broker.lan", 1883, False, "", "")
    assert MqttSettings("mqtts://u%40x:p%3Aw@10.0.0.2").endpoint() == ("10.0.0.2", 8883, True, "u@x", "p:w")
    assert MqttSettings("mqtt://h:1999", ca="/ca.pem").endpoint()[1:3] == (1999, True)
    for bad in ("http://h", "mqtt://", "mqtt://h:port", "h:1883"):
        with pytest.raises(ConfigError):
            MqttSettings(bad).validate()
    with pytest.raises(ConfigError, match="protocol"):
        MqttSettings("mqtt://h", protocol="4").validate()
    with pytest.raises(ConfigError, match="both cert and key"):
        MqttSettings("mqtt://h", cert="/c.pem").validate()


def test_manifest_fields_are_validated_before_use(tmp_path, fleet_models):
    """A signed manifest whose sha256 is a path (or whose digests, names, sizes are out of
    bounds) is refused by decoding, before anything touches the disk."""
    priv, pub = generate_keys(tmp_path / "k")
    key = load_private_key(priv)
    m = build_manifest(fleet_models.base.read_bytes(), key, chunk_size=60_000)
    path_like = "../" * 21 + "x"
    assert len(path_like) == 64
    for change, words in (({"sha256": path_like}, "sha256 must be 64 lowercase hex"),
                          ({"sha256": m.sha256.upper()}, "sha256 must be 64 lowercase hex"),
                          ({"chunks": (m.chunks[0], "/etc/passwd") + m.chunks[2:]}, "chunk 1 digest"),
                          ({"name": "a\nb"}, "name must be 1..128 printable"),
                          ({"version": "v" * 129}, "version must be 1..128"),
                          ({"input_shape": (1, 2 ** 31 - 1, 40)}, "input_shape"),
                          ({"size": 2 ** 40}, "size"),
                          ({"detection": {"latency_ms": 2 ** 70}}, "latency_ms"),
                          ({"detection": {"shell": 1}}, "unknown detection setting")):
        forged = dataclasses.replace(m, **change).signed(key)  # signed by a trusted key: still refused
        with pytest.raises(MessageError, match=words):
            Manifest.from_json(forged.to_json())


def test_model_parameters_obey_the_detection_table():
    from keywire.protocol.detection import DetectionSettings
    from keywire.protocol.errors import ParamsError

    with pytest.raises(ParamsError, match=r"model parameter latency_ms = 1000000000 is out of range 10\.\.2000"):
        DetectionSettings.from_params({"latency_ms": 10 ** 9})
    with pytest.raises(ConfigError, match="average_window_duration_ms = 0"):
        DetectionSettings(average_window_duration_ms=0)
    s = DetectionSettings.from_params({"detection_threshold_list": [1, 2, 3], "minimum_count": 0})
    assert s.detection_threshold_list == (1, 2, 3) and s.class_mismatch(4) == (
        "detection_threshold_list has 3 values for 4 classes")


def test_detection_wire_form_is_its_own():
    from keywire.protocol.messages import Detection

    d = Detection("on", 200, 1500, class_index=1, device_id="d1")
    obj = json.loads(d.to_json())
    assert obj["v"] == 1 and obj["type"] == "detection" and Detection.from_json(d.to_json()) == d
    for bad in ({**obj, "score": 300}, {**obj, "score": "200"}, {**obj, "type": "status"}, {**obj, "event_id": ""}):
        with pytest.raises(MessageError):
            Detection.from_json(json.dumps(bad).encode())


def test_input_shape_without_an_interpreter(fleet_models):
    from keywire.protocol.manifest import input_shape_of

    assert input_shape_of(fleet_models.base.read_bytes())[0] == 1
    with pytest.raises(ModelError):
        input_shape_of(b"\x08\x00\x00\x00TFL3" + b"\xff" * 64)
