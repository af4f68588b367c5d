"""The fleet file: a good one gives the streams and settings; a bad one is one line naming the key."""

from __future__ import annotations

import pytest
from edgercnn.runtime.errors import UsageError
from edgercnn.runtime.service.fleet import SERVICE_KEYS, load_fleet, parse_fleet
from edgercnn.runtime.service.options import ReconnectPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cli import verb
from tests.runtime.service.helpers import dynamic_model, records, write_video

GOOD = """
[service]
batch = 4
batch_timeout_ms = 20
stall_timeout_s = 4
reconnect_initial_s = 0.25
reconnect_max_s = 2
reconnect_attempts = 3
metrics_port = 9109
rotate_mb = 50
score = 0.4
classes = ["person", "car"]

[[streams]]
name = "gate"
url = "rtsp://10.0.0.5/main"
score = 0.7
outputs = ["jsonl", "video"]

[[streams]]
url = "0"
classes = ["plate"]
"""


def test_a_good_fleet_file_gives_streams_and_settings(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(GOOD)
    fleet = load_fleet(path)
    assert fleet.options.batch == 4 and fleet.options.batch_timeout_s == pytest.approx(0.02)
    assert fleet.options.reconnect == ReconnectPolicy(initial_s=0.25, max_s=2.0, attempts=3, stall_s=4.0)
    assert fleet.options.metrics_port == 9109 and fleet.options.metrics_host == "127.0.0.1"
    assert fleet.score == 0.4 and fleet.classes == ("person", "car")
    gate, camera = fleet.streams
    assert (gate.name, gate.url, gate.score, gate.outputs) == (
        "gate",
        "rtsp://10.0.0.5/main",
        0.7,
        ("jsonl", "video"),
    )
    assert (camera.name, camera.url, camera.classes, camera.score) == ("", "0", ("plate",), None)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[service]\nbatch = 0\n[[streams]]\nurl='a'", "service.batch"),
        ("[service]\nbatch = 1.5\n[[streams]]\nurl='a'", "service.batch"),
        ("[service]\nscroe = 0.5\n[[streams]]\nurl='a'", "service.scroe"),
        ("[service]\nscore = 2\n[[streams]]\nurl='a'", "service.score"),
        ("[service]\nstall_timeout_s = -1\n[[streams]]\nurl='a'", "service.stall_timeout_s"),
        ("[service]\nstall_timeout_s = nan\n[[streams]]\nurl='a'", "service.stall_timeout_s"),
        ("[service]\nmetrics_port = 70000\n[[streams]]\nurl='a'", "service.metrics_port"),
        (
            "[service]\nreconnect_initial_s = 5\nreconnect_max_s = 1\n[[streams]]\nurl='a'",
            "service.reconnect_max_s",
        ),
        ("[service]\nreconnect_attempts = true\n[[streams]]\nurl='a'", "service.reconnect_attempts"),
        ("[service]\nclasses = []\n[[streams]]\nurl='a'", "service.classes"),
        ("[[streams]]\nname='x'", "streams[0].url"),
        ("[[streams]]\nurl='a'\nscore='high'", "streams[0].score"),
        ("[[streams]]\nurl='a'\noutputs=['jsonl','gif']", "streams[0].outputs"),
        ("[[streams]]\nurl='a'\nname='../up'", "streams[0].name"),
        ("[[streams]]\nurl='a'\nname='x'\n[[streams]]\nurl='b'\nname='x'", "streams"),
        ("[[streams]]\nurl=''", "streams[0].url"),
        ("[[streams]]\nurl='a'\ncolour='red'", "streams[0].colour"),
        ("[service]\nbatch = 2", "streams"),
        ("streams = 3", "streams"),
        ("[camera]\nurl='a'", "camera"),
        ("[[streams]\nurl='a'", "not valid TOML"),
    ],
)
def test_a_bad_fleet_file_is_one_line_naming_the_file_and_key(tmp_path, text, key):
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_fleet(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and key in message and "\n" not in message


def test_a_missing_fleet_file_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="no such fleet file"):
        load_fleet(tmp_path / "none.toml")


def test_run_with_a_fleet_file_names_outputs_by_stream_and_filters_per_stream(tmp_path, capsys):
    model = dynamic_model(tmp_path)
    a = write_video(tmp_path / "a.avi", 4)
    b = write_video(tmp_path / "b.avi", 4)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f"[service]\nscore = 0.0\n"
        f"[[streams]]\nname = 'gate'\nurl = '{a}'\n"
        f"[[streams]]\nname = 'yard'\nurl = '{b}'\nclasses = ['car']\noutputs = ['jsonl']\n"
    )
    out = tmp_path / "out"
    assert (
        verb("run")(["--model", str(model), "--fleet", str(fleet), "--out", str(out), "--no-progress"]) == 0
    )
    lines = records(out / "detections.jsonl")
    gate = [r for r in lines if r["stream"] == "gate"]
    yard = [r for r in lines if r["stream"] == "yard"]
    assert len(gate) == 4 and len(yard) == 4
    assert {d["name"] for r in yard for d in r["detections"]} <= {"car"}
    assert len({d["name"] for r in gate for d in r["detections"]}) > 1
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["gate.annotated.mp4"]  # yard: jsonl only


def test_a_fleet_stream_with_an_unknown_class_names_the_stream(tmp_path, capsys):
    model = dynamic_model(tmp_path)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f"[[streams]]\nname = 'gate'\nurl = '{write_video(tmp_path / 'a.avi', 2)}'\nclasses = ['giraffe']\n"
    )
    assert verb("run")(["--model", str(model), "--fleet", str(fleet), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "stream gate: unknown class 'giraffe'" in err and "Traceback" not in err


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 100_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    service=st.dictionaries(st.sampled_from([*SERVICE_KEYS, "bogus"]), _VALUES, max_size=4),
    stream=st.dictionaries(
        st.sampled_from(["name", "url", "score", "classes", "outputs", "x"]), _VALUES, max_size=4
    ),
)
def test_any_fleet_document_parses_or_is_one_usage_line_naming_a_key(service, stream):
    service = {k: v for k, v in service.items() if v is not None}
    stream = {k: v for k, v in stream.items() if v is not None}
    try:
        fleet = parse_fleet({"service": service, "streams": [stream]}, "f.toml: ")
    except UsageError as exc:
        message = str(exc)
        assert message.startswith("f.toml: ") and "\n" not in message
        assert any(key in message for key in [*service, *stream, "streams", "reconnect"]), message
        return
    assert fleet.streams[0].url == stream["url"].strip()
    options = fleet.options
    assert options.batch is None or options.batch >= 1
    assert 0 < options.reconnect.initial_s <= options.reconnect.max_s
    assert options.reconnect.stall_s > 0 and options.batch_timeout_s >= 0
