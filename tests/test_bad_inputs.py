"""The bad-input bank: every subcommand, fed what a new user gets wrong, answers with one clear line.

Each case runs the verb in-process through the one dispatcher (as ``edgercnn <verb> ...`` would)
and checks: the exit status (2 for usage and input errors, the project's convention), one error
line on stderr that names the input, no traceback anywhere, and every file that was in the case's
folder before the call byte-identical after it. A few run as real processes to prove the exit
status a shell sees. ``python -m tests.test_bad_inputs`` prints the bank's size per subcommand.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.builders.bad_inputs import (
    REF_CARD,
    card_with_weights,
    coco_set,
    good_image,
    model_with_config,
    state_dict_with,
    text_file,
    truncated_image,
)
from tests.builders.fixed_onnx import make_tiny_onnx, tiny_config, tiny_outputs
from tests.builders.onnx_detector import tiny_detector

# Progress, not errors: export's numbered steps, bench's "bench: MODEL on BACKEND ..." per entry.
PROGRESS = re.compile(r"^(\[\d+/\d+\] |bench: .* \.\.\.$)")


@dataclass(frozen=True)
class Shared:
    """Inputs built once for the whole bank (outside each case's folder, which holds its own)."""

    root: Path

    @property
    def model(self) -> str:
        return str(self.root / "tiny.onnx")

    @property
    def labels_model(self) -> str:
        """A graph that gives label 3 while its config names only the background and one class."""
        return str(self.root / "labels.onnx")

    def checkpoint(self, name: str) -> str:
        return str(self.root / name)


Make = Callable[[Path, Shared], list[str]]


@dataclass(frozen=True)
class Case:
    verb: str
    name: str
    make: Make
    names: str  # what the error line must name: the file, the flag or the key
    code: int = 2
    only_line: bool = True  # False: a run that skips the input, says so in a line and ends with a summary


def _image(t: Path) -> str:
    return str(good_image(t / "a.png"))


def _bad_model(change: Callable[[dict[str, Any]], None] | None) -> Callable[[Path, Shared], str]:
    def make(t: Path, s: Shared) -> str:
        return str(model_with_config(Path(s.model), t / "bad.onnx", change))

    return make


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


# Model files whose metadata contradicts the graph or holds impossible values (silent wrong answers).
CONTRADICTIONS: list[tuple[str, Callable[[dict[str, Any]], None] | None, str]] = [
    ("dtype-uint8-vs-float-graph", _set(["input", "dtype"], "uint8"), "input.dtype"),
    ("height-vs-graph", _set(["input", "height"], 128), "input.height"),
    (
        "masks-output-missing",
        _set(["outputs"], ["num_detections", "boxes", "scores", "labels", "masks"]),
        "outputs",
    ),
    ("mean-nan", _set(["input", "mean"], [float("nan"), 0.4, 0.4]), "input.mean"),
    ("std-zero", _set(["input", "std"], [0.2, 0.0, 0.2]), "input.std"),
    ("one-class-name", _set(["class_names"], ["__background__"]), "class_names"),
    ("detections-vs-graph", _set(["detections_per_img"], 32), "detections_per_img"),
    ("batch-vs-graph", _set(["batch"], 2), "batch"),
    ("score-thresh-above-one", _set(["thresholds", "box_score_thresh"], 2.0), "box_score_thresh"),
    ("no-config", None, "edgercnn.config"),
]


def _run(*extra: str, source: Callable[[Path], str] = _image) -> Make:
    return lambda t, s: ["--model", s.model, "--source", source(t), "--no-progress", *extra]


def _eval(*extra: str, ann: Callable[[Path], Path] | None = None) -> Make:
    def make(t: Path, s: Shared) -> list[str]:
        path = (ann or coco_set)(t)
        return [s.model, "--images", str(t / "images"), "--ann", str(path), "--no-progress", *extra]

    return make


def _calibrate(*extra: str, source: Callable[[Path], str] = _image) -> Make:
    return lambda t, s: [source(t), "--out", str(t / "calib"), *extra]


def _bench(*extra: str) -> Make:
    return lambda t, s: ["--model", s.model, "--runs", "1", "--warmup", "0", "--size", "64", "64", *extra]


def _export(*extra: str) -> Make:
    return lambda t, s: ["--card", str(REF_CARD), "--out", str(t / "out"), *extra]


def _parity(*extra: str) -> Make:
    return lambda t, s: ["--card", str(REF_CARD), "--candidates", "deploy", "--limit", "1", *extra]


def _quantize(*extra: str) -> Make:
    def make(t: Path, s: Shared) -> list[str]:
        good_image(t / "calib" / "a.png")
        return ["--onnx", s.model, "--calib", str(t / "calib"), "--out", str(t / "q"), *extra]

    return make


def _file(name: str, text: str = "mine\n") -> Callable[[Path], str]:
    return lambda t: str(text_file(t / name, text))


def _dir(name: str) -> Callable[[Path], str]:
    def make(t: Path) -> str:
        (t / name).mkdir(parents=True, exist_ok=True)
        return str(t / name)

    return make


def _truncated(name: str) -> Callable[[Path], str]:
    return lambda t: str(truncated_image(t / name))


def _ann(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    return lambda t: coco_set(t, change)


def _drop(key: str, field: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d[key][0].pop(field)


def _listing_truncated(name: str) -> Callable[[dict[str, Any]], None]:
    """Points the set's image at a truncated file (written by the case's make, see _eval_truncated)."""
    return lambda d: d["images"][0].update(file_name=name)


def _eval_truncated(name: str) -> Make:
    def make(t: Path, s: Shared) -> list[str]:
        ann = coco_set(t, _listing_truncated(name))
        truncated_image(t / "images" / name)
        return [s.model, "--images", str(t / "images"), "--ann", str(ann), "--no-progress"]

    return make


def _with_model(
    verb_args: Callable[[str, Path], list[str]], change: Callable[[dict[str, Any]], None] | None
) -> Make:
    make_model = _bad_model(change)
    return lambda t, s: verb_args(make_model(t, s), t)


def _engine_without_sidecar(t: Path, s: Shared) -> list[str]:
    (t / "m.engine").write_bytes(b"\x00" * 16)
    return ["--model", str(t / "m.engine"), "--source", _image(t), "--no-progress"]


def _engine_with_sidecar(change: Callable[[dict[str, Any]], None]) -> Make:
    def make(t: Path, s: Shared) -> list[str]:
        from tests.builders.onnx_detector import model_config

        config = model_config()
        change(config)
        (t / "m.engine").write_bytes(b"\x00" * 16)
        (t / "m.engine.json").write_text(json.dumps({**config, "engine": {}}))
        return ["--model", str(t / "m.engine"), "--source", _image(t), "--no-progress"]

    return make


CASES: list[Case] = [
    # --- run: arguments
    Case("run", "score-nan", _run("--score", "nan"), "--score"),
    Case("run", "score-above-one", _run("--score", "1.5"), "--score"),
    Case("run", "score-negative", _run("--score", "-0.1"), "--score"),
    Case("run", "score-inf", _run("--score", "inf"), "--score"),
    Case("run", "score-text", _run("--score", "high"), "--score"),
    Case("run", "batch-zero", _run("--batch", "0"), "--batch"),
    Case("run", "batch-negative", _run("--batch", "-3"), "--batch"),
    Case("run", "fps-zero", _run("--fps", "0"), "--fps"),
    Case("run", "fps-nan", _run("--fps", "nan"), "--fps"),
    Case("run", "max-frames-zero", _run("--max-frames", "0"), "--max-frames"),
    Case("run", "threads-zero", _run("--threads", "0"), "--threads"),
    Case("run", "metrics-port-too-big", _run("--metrics-port", "70000"), "--metrics-port"),
    Case("run", "reconnect-attempts-negative", _run("--reconnect-attempts", "-1"), "--reconnect-attempts"),
    Case("run", "stall-timeout-zero", _run("--stall-timeout", "0"), "--stall-timeout"),
    Case("run", "unknown-class-id", _run("--classes", "7"), "class id 7"),
    Case("run", "unknown-class-name", _run("--classes", "unicorn"), "unicorn"),
    Case(
        "run", "out-is-a-file", lambda t, s: [*_run()(t, s), "--out", _file("results.txt")(t)], "results.txt"
    ),
    Case(
        "run",
        "fleet-missing",
        lambda t, s: ["--model", s.model, "--fleet", str(t / "nope.toml")],
        "nope.toml",
    ),
    Case("run", "fleet-is-a-dir", lambda t, s: ["--model", s.model, "--fleet", _dir("fleet")(t)], "fleet"),
    Case("run", "plugin-lib-missing", _run("--plugin-lib", "/nonexistent/lib.so"), "lib.so"),
    # --- run: model files
    Case(
        "run",
        "model-missing",
        lambda t, s: ["--model", str(t / "nope.onnx"), "--source", _image(t)],
        "nope.onnx",
    ),
    Case(
        "run", "model-is-a-dir", lambda t, s: ["--model", _dir("m.onnx")(t), "--source", _image(t)], "m.onnx"
    ),
    Case(
        "run",
        "model-empty",
        lambda t, s: ["--model", _file("e.onnx", "")(t), "--source", _image(t)],
        "e.onnx",
    ),
    Case(
        "run",
        "model-is-text",
        lambda t, s: ["--model", _file("j.onnx", "\xff" * 9)(t), "--source", _image(t)],
        "j.onnx",
    ),
    *[
        Case(
            "run",
            f"model-{name}",
            _with_model(lambda m, t: ["--model", m, "--source", _image(t)], change),
            key,
        )
        for name, change, key in CONTRADICTIONS
    ],
    Case("run", "engine-without-sidecar", _engine_without_sidecar, "sidecar"),
    Case(
        "run",
        "sidecar-std-inf",
        _engine_with_sidecar(_set(["input", "std"], [float("inf")] * 3)),
        "input.std",
    ),
    Case(
        "run",
        "labels-beyond-class-names",
        lambda t, s: ["--model", s.labels_model, "--source", _image(t), "--no-progress"],
        "class_names",
        1,  # found on the first frame: the run fails mid-way, after its model line
        only_line=False,
    ),
    # --- run: images (skipped with a line naming them; the run then has no frame: exit 1)
    Case("run", "truncated-jpeg", _run(source=_truncated("cut.jpg")), "truncated JPEG", 1, only_line=False),
    Case("run", "truncated-png", _run(source=_truncated("cut.png")), "truncated PNG", 1, only_line=False),
    # --- eval
    Case("eval", "limit-zero", _eval("--limit", "0"), "--limit"),
    Case("eval", "limit-negative", _eval("--limit", "-1"), "--limit"),
    Case("eval", "threads-zero", _eval("--threads", "0"), "--threads"),
    Case(
        "eval",
        "ann-missing",
        lambda t, s: [s.model, "--images", _dir("i")(t), "--ann", str(t / "no.json")],
        "no.json",
    ),
    Case(
        "eval",
        "ann-is-a-dir",
        lambda t, s: [s.model, "--images", _dir("i")(t), "--ann", _dir("a.json")(t)],
        "a.json",
    ),
    Case(
        "eval",
        "ann-not-json",
        lambda t, s: [s.model, "--images", _dir("i")(t), "--ann", _file("a.json")(t)],
        "a.json",
    ),
    Case("eval", "ann-without-annotations", _eval(ann=_ann(lambda d: d.pop("annotations"))), "'annotations'"),
    Case("eval", "ann-image-without-file-name", _eval(ann=_ann(_drop("images", "file_name"))), "'file_name'"),
    Case("eval", "ann-without-bbox", _eval(ann=_ann(_drop("annotations", "bbox"))), "'bbox'"),
    Case("eval", "ann-without-area", _eval(ann=_ann(_drop("annotations", "area"))), "'area'"),
    Case("eval", "ann-category-without-name", _eval(ann=_ann(_drop("categories", "name"))), "'name'"),
    Case(
        "eval",
        "ann-bbox-malformed",
        _eval(ann=_ann(lambda d: d["annotations"][0].update(bbox=[1, 2]))),
        "bbox",
    ),
    Case("eval", "ann-image-not-in-folder", _eval(ann=_ann(_listing_truncated("gone.png"))), "gone.png"),
    Case("eval", "truncated-jpeg", _eval_truncated("cut.jpg"), "truncated JPEG"),
    Case("eval", "truncated-png", _eval_truncated("cut.png"), "truncated PNG"),
    Case(
        "eval",
        "images-is-a-file",
        lambda t, s: [s.model, "--images", _file("i")(t), "--ann", str(coco_set(t))],
        "--images",
    ),
    Case(
        "eval",
        "model-missing",
        lambda t, s: [str(t / "m.onnx"), "--images", _dir("i")(t), "--ann", "x"],
        "m.onnx",
    ),
    *[
        Case(
            "eval",
            f"model-{name}",
            _with_model(
                lambda m, t: [m, "--images", str(t / "images"), "--ann", str(coco_set(t)), "--no-progress"],
                change,
            ),
            key,
        )
        for name, change, key in CONTRADICTIONS[:3]
    ],
    Case(
        "eval",
        "labels-beyond-class-names",
        lambda t, s: [
            s.labels_model,
            "--images",
            str(t / "images"),
            "--ann",
            str(coco_set(t)),
            "--no-progress",
        ],
        "class_names",
    ),
    # --- calibrate
    Case("calibrate", "count-zero", _calibrate("--count", "0"), "--count"),
    Case("calibrate", "count-text", _calibrate("--count", "many"), "--count"),
    Case("calibrate", "dedup-negative", _calibrate("--dedup-threshold", "-1"), "--dedup-threshold"),
    Case("calibrate", "dedup-nan", _calibrate("--dedup-threshold", "nan"), "--dedup-threshold"),
    Case("calibrate", "frames-per-video-zero", _calibrate("--frames-per-video", "0"), "--frames-per-video"),
    Case("calibrate", "out-is-a-file", lambda t, s: [_image(t), "--out", _file("calib")(t)], "calib"),
    Case("calibrate", "truncated-jpeg", _calibrate(source=_truncated("cut.jpg")), "cut.jpg"),
    Case("calibrate", "truncated-png", _calibrate(source=_truncated("cut.png")), "cut.png"),
    Case("calibrate", "text-named-png", _calibrate(source=_file("fake.png")), "fake.png"),
    Case("calibrate", "source-missing", _calibrate(source=lambda t: str(t / "nowhere")), "nowhere"),
    # --- bench
    Case("bench", "runs-zero", _bench("--runs", "0"), "--runs"),
    Case("bench", "batch-zero", _bench("--batch", "0"), "--batch"),
    Case("bench", "warmup-negative", _bench("--warmup", "-1"), "--warmup"),
    Case("bench", "size-zero", lambda t, s: ["--model", s.model, "--size", "0", "720"], "--size"),
    Case("bench", "size-huge", lambda t, s: ["--model", s.model, "--size", "99999", "720"], "--size"),
    Case("bench", "score-above-one", _bench("--score", "2"), "--score"),
    Case(
        "bench",
        "image-truncated",
        lambda t, s: [*_bench()(t, s), "--image", _truncated("cut.jpg")(t)],
        "cut.jpg",
    ),
    Case("bench", "image-missing", _bench("--image", "/nonexistent/frame.jpg"), "frame.jpg"),
    Case("bench", "out-is-a-file", lambda t, s: [*_bench()(t, s), "--out", _file("bench")(t)], "bench"),
    Case("bench", "model-is-a-dir", lambda t, s: ["--model", _dir("m.onnx")(t)], "m.onnx"),
    Case(
        "bench",
        "model-std-zero",
        _with_model(lambda m, t: ["--model", m, "--runs", "1"], CONTRADICTIONS[4][1]),
        "input.std",
    ),
    Case(
        "bench",
        "labels-beyond-class-names",
        lambda t, s: ["--model", s.labels_model, "--runs", "1", "--warmup", "0", "--size", "64", "64"],
        "class_names",
    ),
    # --- build
    Case("build", "onnx-missing", lambda t, s: [str(t / "none.onnx")], "none.onnx"),
    Case("build", "batch-range-decreasing", lambda t, s: [s.model, "--batch", "4:2:8"], "--batch"),
    Case("build", "batch-range-text", lambda t, s: [s.model, "--batch", "1:x:4"], "--batch"),
    Case("build", "opt-level-nine", lambda t, s: [s.model, "--opt-level", "9"], "--opt-level"),
    Case("build", "workspace-zero", lambda t, s: [s.model, "--workspace-mb", "0"], "--workspace-mb"),
    Case("build", "calib-images-missing", lambda t, s: [s.model, "--calib-images", str(t / "nope")], "nope"),
    Case("build", "engine-is-a-dir", lambda t, s: [s.model, "--engine", _dir("e.engine")(t)], "e.engine"),
    # --- export (torch)
    Case(
        "export",
        "checkpoint-nan",
        lambda t, s: [*_export()(t, s), "--checkpoint", s.checkpoint("nan.pth")],
        "NaN",
    ),
    Case(
        "export",
        "checkpoint-overflows",
        lambda t, s: [*_export()(t, s), "--checkpoint", s.checkpoint("huge.pth")],
        "probe image",
    ),
    Case(
        "export",
        "card-hash-mismatch",
        lambda t, s: ["--card", str(card_with_weights(t / "card", "0" * 64)), "--out", str(t / "o")],
        "weights_sha256",
    ),
    Case(
        "export",
        "checkpoint-not-a-checkpoint",
        lambda t, s: [*_export()(t, s), "--checkpoint", _file("w.pth")(t)],
        "w.pth",
    ),
    Case("export", "checkpoint-missing", _export("--checkpoint", "/nonexistent/w.pth"), "w.pth"),
    Case(
        "export",
        "checkpoint-is-a-dir",
        lambda t, s: [*_export()(t, s), "--checkpoint", _dir("w.pth")(t)],
        "w.pth",
    ),
    Case("export", "source-size-malformed", _export("--source-size", "1280x"), "--source-size"),
    Case("export", "source-size-zero", _export("--source-size", "0x720"), "--source-size"),
    Case("export", "batch-zero", _export("--batch", "0"), "--batch"),
    Case("export", "batch-text", _export("--batch", "some"), "--batch"),
    Case("export", "out-is-a-file", lambda t, s: ["--card", str(REF_CARD), "--out", _file("out")(t)], "out"),
    Case("export", "card-missing", lambda t, s: ["--card", str(t / "card.json")], "card.json"),
    Case("export", "card-is-not-json", lambda t, s: ["--card", _file("card.json")(t)], "card.json"),
    Case("export", "num-classes-one", _export("--num-classes", "1"), "--num-classes"),
    # --- parity (torch)
    Case("parity", "limit-zero", _parity("--limit", "0"), "--limit"),
    Case("parity", "batch-zero", _parity("--batch", "0"), "--batch"),
    Case("parity", "images-missing", lambda t, s: [*_parity()(t, s), "--images", str(t / "nope")], "nope"),
    Case(
        "parity",
        "images-truncated",
        lambda t, s: [*_parity()(t, s), "--images", str(Path(_truncated("i/cut.jpg")(t)).parent)],
        "cut.jpg",
    ),
    Case("parity", "coco-missing", lambda t, s: [*_parity()(t, s), "--coco", str(t / "no.json")], "no.json"),
    Case("parity", "source-size-malformed", _parity("--source-size", "12x"), "--source-size"),
    Case(
        "parity",
        "checkpoint-nan",
        lambda t, s: [*_parity()(t, s), "--checkpoint", s.checkpoint("nan.pth")],
        "NaN",
    ),
    # --- quantize
    Case(
        "quantize",
        "onnx-missing",
        lambda t, s: ["--onnx", str(t / "m.onnx"), "--calib", _dir("c")(t)],
        "m.onnx",
    ),
    Case("quantize", "calib-missing", lambda t, s: ["--onnx", s.model, "--calib", str(t / "nope")], "nope"),
    Case("quantize", "max-ap-drop-negative", _quantize("--max-ap-drop", "-1"), "--max-ap-drop"),
    Case("quantize", "max-ap-drop-nan", _quantize("--max-ap-drop", "nan"), "--max-ap-drop"),
    Case("quantize", "eval-limit-zero", _quantize("--eval-limit", "0"), "--eval-limit"),
    Case("quantize", "threads-zero", _quantize("--threads", "0"), "--threads"),
    Case("quantize", "out-is-a-file", lambda t, s: [*_quantize()(t, s)[:4], "--out", _file("q")(t)], "q"),
    Case(
        "quantize",
        "calib-truncated",
        lambda t, s: [
            "--onnx",
            s.model,
            "--calib",
            str(Path(_truncated("c/cut.png")(t)).parent),
            "--out",
            str(t / "q"),
        ],
        "cut.png",
    ),
    # --- triton
    Case("triton", "model-missing", lambda t, s: [str(t / "m.onnx"), "--out", str(t / "repo")], "m.onnx"),
    Case("triton", "out-is-a-file", lambda t, s: [s.model, "--out", _file("repo")(t)], "repo"),
    Case(
        "triton",
        "max-batch-zero",
        lambda t, s: [s.model, "--out", str(t / "r"), "--max-batch", "0"],
        "--max-batch",
    ),
    Case(
        "triton",
        "instances-zero",
        lambda t, s: [s.model, "--out", str(t / "r"), "--instances", "0"],
        "--instances",
    ),
    Case(
        "triton", "threads-zero", lambda t, s: [s.model, "--out", str(t / "r"), "--threads", "0"], "--threads"
    ),
    # --- synth, train, demo (arguments only: their work takes minutes)
    Case("synth", "size-malformed", lambda t, s: ["--out", str(t / "d"), "--size", "100x"], "size"),
    Case(
        "synth",
        "video-fps-zero",
        lambda t, s: ["--video", str(t / "v.mp4"), "--video-fps", "0"],
        "--video-fps",
    ),
    Case("synth", "train-negative", lambda t, s: ["--out", str(t / "d"), "--train", "-1"], "--train"),
    Case("synth", "out-is-a-file", lambda t, s: ["--out", _file("d")(t)], "d"),
    Case(
        "train",
        "iters-zero",
        lambda t, s: ["--arch", "ref_fasterrcnn", "--data", _dir("d")(t), "--iters", "0"],
        "--iters",
    ),
    Case(
        "train", "data-missing", lambda t, s: ["--arch", "ref_fasterrcnn", "--data", str(t / "nope")], "nope"
    ),
    Case(
        "train",
        "lr-zero",
        lambda t, s: ["--arch", "ref_fasterrcnn", "--data", _dir("d")(t), "--lr", "0"],
        "--lr",
    ),
    Case(
        "train",
        "batch-size-zero",
        lambda t, s: ["--arch", "ref_fasterrcnn", "--data", _dir("d")(t), "--batch-size", "0"],
        "--batch-size",
    ),
    Case(
        "demo", "max-frames-zero", lambda t, s: ["--out", str(t / "o"), "--max-frames", "0"], "--max-frames"
    ),
    Case("demo", "card-missing", lambda t, s: ["--out", str(t / "o"), "--card", str(t / "c.json")], "c.json"),
]


def bank_counts() -> dict[str, int]:
    """Cases per subcommand, in the order the bank lists them."""
    return dict(Counter(case.verb for case in CASES))


def bank_table() -> str:
    counts = bank_counts()
    rows = [f"| {verb:<9} | {count:>5} |" for verb, count in counts.items()]
    return "\n".join(
        ["| command   | cases |", "|-----------|-------|", *rows, f"| {'total':<9} | {len(CASES):>5} |"]
    )


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    root = tmp_path_factory.mktemp("bank")
    tiny_detector(root / "tiny.onnx")
    config = tiny_config("fasterrcnn", detections=8)
    outputs = tiny_outputs(config, 6, seed=3)
    outputs["labels"][0, :6] = 3
    config["class_names"] = ["__background__", "person"]
    make_tiny_onnx(root / "labels.onnx", config, outputs)
    return Shared(root)


@pytest.fixture(scope="module")
def checkpoints(shared: Shared) -> Shared:
    """The reference checkpoint broken two ways: a NaN tensor, and finite weights that overflow."""
    import torch

    def nan(state: dict[str, Any]) -> None:
        key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")

    def huge(state: dict[str, Any]) -> None:
        for key, value in state.items():
            if value.is_floating_point() and value.dim() == 4:
                state[key] = value * 1e6  # finite, but a dozen convs later the features overflow float32
        assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())

    state_dict_with(shared.root / "nan.pth", nan)
    state_dict_with(shared.root / "huge.pth", huge)
    return shared


def _run_verb(verb: str, argv: list[str]) -> int:
    from edgercnn.cli import main

    return main([verb, *argv])


@pytest.mark.parametrize("case", CASES, ids=[f"{c.verb}-{c.name}" for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(
    case: Case,
    shared: Shared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if case.verb in ("export", "parity"):
        pytest.importorskip("torch")
        request.getfixturevalue("checkpoints")
    work = tmp_path / "work"
    work.mkdir()
    argv = case.make(work, shared)
    before = _tree(work)
    code = _run_verb(case.verb, argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert code == case.code, (code, err)
    if case.only_line:
        assert len(lines) == 1, err
        assert lines[0].startswith(f"edgercnn {case.verb}: error: ") and case.names in lines[0], lines[0]
    else:
        assert any(case.names in line and "error: " in line for line in lines), err
    after = _tree(work)
    assert {k: after.get(k) for k in before} == before, "a file the user had was changed"


def test_bank_covers_every_subcommand() -> None:
    from edgercnn.cli import VERBS

    counts = bank_counts()
    assert set(counts) == set(VERBS), set(VERBS) ^ set(counts)
    assert len(CASES) >= 60
    assert len({(c.verb, c.name) for c in CASES}) == len(CASES), "two cases share a name"


@pytest.mark.parametrize(
    ("verb", "argv", "names"),
    [
        ("run", ["--model", "M", "--source", "x.png", "--score", "nan"], "--score"),
        ("eval", ["M", "--images", ".", "--ann", "missing.json"], "missing.json"),
    ],
)
def test_a_real_process_exits_2_with_one_line(
    shared: Shared, tmp_path: Path, verb: str, argv: list[str], names: str
) -> None:
    argv = [shared.model if a == "M" else a for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "edgercnn", verb, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and names in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


if __name__ == "__main__":
    print(bank_table())
