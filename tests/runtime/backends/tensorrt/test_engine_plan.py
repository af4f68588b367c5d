"""The engine build's decisions, checked without TensorRT: version -> strategy, profile shapes,
DLA, calibration batching and cache files, parser error report, the command for the target."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from edgercnn.runtime.backends.tensorrt.plan import (
    BatchProfile,
    EngineBuildError,
    EngineOptions,
    ParserIssue,
    TensorRTVersion,
    build_command,
    calibration_batches,
    check_dla_shapes,
    choose_strategy,
    default_engine_path,
    dla_settings,
    format_parser_errors,
    parse_calibration_cache_header,
    parse_trt_version,
    profile_shapes,
    read_calibration_cache,
    read_timing_cache,
)
from edgercnn.runtime.commands import build as build_verb
from edgercnn.runtime.commands import build_parser
from edgercnn.runtime.commands.build import options_from_args

TRT10 = TensorRTVersion(10, 3, 0, 30)
TRT11 = TensorRTVersion(11, 0, 0, 0)


def test_trt_version_parsing() -> None:
    assert parse_trt_version("10.3.0.30") == (10, 3, 0, 30)
    assert parse_trt_version("11.1") == (11, 1, 0, 0)
    assert str(parse_trt_version("10.13.0.35")) == "10.13.0.35"
    with pytest.raises(EngineBuildError):
        parse_trt_version("unknown")


@pytest.mark.parametrize(
    ("precision", "onnx", "cache", "images", "typing", "flags", "source", "calibrator"),
    [
        ("fp32", "fp32", None, False, "weakly-typed", (), None, None),
        ("fp16", "fp32", None, False, "weakly-typed", ("FP16",), None, None),
        ("fp16", "fp16", None, False, "strongly-typed", (), None, None),
        ("int8", "int8-qdq", None, False, "weakly-typed", ("INT8", "FP16"), "qdq", None),
        (
            "int8",
            "fp32",
            "EntropyCalibration2",
            False,
            "weakly-typed",
            ("INT8", "FP16"),
            "calibration-cache",
            "entropy2",
        ),
        (
            "int8",
            "fp32",
            "MinMaxCalibration",
            True,
            "weakly-typed",
            ("INT8", "FP16"),
            "calibration-cache",
            "minmax",
        ),
        ("int8", "fp32", None, True, "weakly-typed", ("INT8", "FP16"), "calibrated", "entropy2"),
    ],
)
def test_tensorrt10_strategy(
    precision: str,
    onnx: str,
    cache: str | None,
    images: bool,
    typing: str,
    flags: tuple[str, ...],
    source: str | None,
    calibrator: str | None,
) -> None:
    strategy = choose_strategy(TRT10, precision, onnx, cache, images)
    assert (strategy.typing, strategy.flags, strategy.int8_source, strategy.calibrator) == (
        typing,
        flags,
        source,
        calibrator,
    )
    assert strategy.precision == precision
    assert strategy.notes and "TensorRT 10.3.0.30" in strategy.notes[0]


@pytest.mark.parametrize(("precision", "onnx"), [("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8-qdq")])
def test_tensorrt11_is_strongly_typed_without_precision_flags(precision: str, onnx: str) -> None:
    strategy = choose_strategy(TRT11, precision, onnx, "EntropyCalibration2", True)
    assert strategy.typing == "strongly-typed"
    assert not {"FP16", "INT8"} & set(strategy.flags)
    assert strategy.calibrator is None
    assert any("ignored" in note for note in strategy.notes)


@pytest.mark.parametrize(
    ("version", "precision", "onnx", "expected"),
    [
        (TRT11, "fp16", "fp32", "FP16 ONNX"),
        (TRT11, "int8", "fp32", "Q/DQ ONNX"),
        (TRT10, "int8", "fp32", "needs --calib-cache"),
        (TRT10, "fp16", "int8-qdq", "--precision int8"),
        (TRT10, "fp32", "fp16", "--precision fp16"),
        (TensorRTVersion(8, 6, 1, 0), "fp16", "fp32", "TensorRT 10 or later"),
    ],
)
def test_impossible_combinations_say_what_to_do(
    version: TensorRTVersion, precision: str, onnx: str, expected: str
) -> None:
    with pytest.raises(EngineBuildError, match=expected):
        choose_strategy(version, precision, onnx)


def test_dla_needs_reduced_precision_and_falls_back_to_gpu() -> None:
    with pytest.raises(EngineBuildError, match="DLA runs FP16 or INT8"):
        choose_strategy(TRT10, "fp32", "fp32", dla_core=0)
    assert choose_strategy(TRT10, "fp16", "fp32", dla_core=1).flags == ("FP16", "GPU_FALLBACK")
    assert dla_settings(None, 0) is None
    assert dla_settings(1, 2) is not None and dla_settings(1, 2).core == 1  # type: ignore[union-attr]
    with pytest.raises(EngineBuildError, match="no DLA"):
        dla_settings(0, 0)
    with pytest.raises(EngineBuildError, match=r"cores 0\.\.1"):
        dla_settings(2, 2)
    dynamic = profile_shapes("images", (-1, 3, 32, 32), BatchProfile(1, 2, 4))
    with pytest.raises(EngineBuildError, match=r"DLA runs fixed shapes only.*--batch N"):
        check_dla_shapes(0, "images", dynamic)
    check_dla_shapes(0, "images", profile_shapes("images", (-1, 3, 32, 32), BatchProfile(2, 2, 2)))
    check_dla_shapes(None, "images", dynamic)


@pytest.mark.parametrize("version", ["11.0.0.1", "11.3.0.4", "11.4.0.2"])
def test_dla_is_refused_on_tensorrt_11_before_11_4_1(version: str) -> None:
    with pytest.raises(EngineBuildError, match=r"no DLA on Jetson.*returns in 11\.4\.1.*JetPack 7\.2\.2"):
        choose_strategy(parse_trt_version(version), "fp16", "fp16", dla_core=0)
    strategy = choose_strategy(parse_trt_version("11.4.1.0"), "fp16", "fp16", dla_core=0)
    assert strategy.typing == "strongly-typed" and strategy.flags == ("GPU_FALLBACK",)


def test_unknown_cache_algorithm_is_refused() -> None:
    with pytest.raises(EngineBuildError, match="LegacyCalibration"):
        choose_strategy(TRT10, "int8", "fp32", "LegacyCalibration")


def test_profile_shapes_for_fixed_and_dynamic_batch() -> None:
    fixed = profile_shapes("images", (2, 3, 288, 384), None)
    assert fixed.min == fixed.opt == fixed.max == (2, 3, 288, 384)
    dynamic = profile_shapes("images", (-1, 3, 288, 384), BatchProfile(1, 4, 8))
    assert (dynamic.min, dynamic.opt, dynamic.max) == ((1, 3, 288, 384), (4, 3, 288, 384), (8, 3, 288, 384))
    default = profile_shapes("images", (-1, 3, 32, 32), None)
    assert (default.min[0], default.opt[0], default.max[0]) == (1, 1, 4)
    with pytest.raises(EngineBuildError, match="fixed image size"):
        profile_shapes("images", (1, 3, -1, -1), None)
    with pytest.raises(EngineBuildError, match="--batch dynamic"):
        profile_shapes("images", (1, 3, 32, 32), BatchProfile(1, 2, 4))


@pytest.mark.parametrize(("text", "expected"), [("4", (4, 4, 4)), ("1:4:8", (1, 4, 8))])
def test_batch_profile_parsing(text: str, expected: tuple[int, int, int]) -> None:
    profile = BatchProfile.parse(text)
    assert (profile.min, profile.opt, profile.max) == expected
    assert BatchProfile.parse(str(profile)) == profile


@pytest.mark.parametrize("text", ["0", "4:2:8", "a", "1:2", "1:2:3:4"])
def test_bad_batch_profile_is_refused(text: str) -> None:
    with pytest.raises(EngineBuildError, match="--batch"):
        BatchProfile.parse(text)


def test_calibration_batches_are_whole_and_report_the_remainder(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.png" for i in range(10)]
    batches, left_out = calibration_batches(paths, 4)
    assert batches == [paths[0:4], paths[4:8]] and left_out == 2
    assert calibration_batches(paths, 1) == ([[p] for p in paths], 0)
    with pytest.raises(EngineBuildError, match="fewer than one batch"):
        calibration_batches(paths[:3], 4)


def test_cache_header_matches_the_int8_writer(tmp_path: Path) -> None:
    """The cache 'edgercnn quantize' writes is one this builder accepts, with the right calibrator."""
    from edgercnn.export.quantize.trtcache import write_calibration_cache

    for method, calibrator_algorithm in (("entropy", "EntropyCalibration2"), ("minmax", "MinMaxCalibration")):
        path = write_calibration_cache(
            {"images": 2.5, "conv1_out": 7.0}, tmp_path / f"{method}.cache", method
        )
        data = read_calibration_cache(path)
        assert data is not None
        version, algorithm = parse_calibration_cache_header(data, path)
        assert algorithm == calibrator_algorithm and version == 100300
        assert choose_strategy(TRT10, "int8", "fp32", algorithm).int8_source == "calibration-cache"


def test_bad_or_missing_cache_files(tmp_path: Path) -> None:
    assert read_calibration_cache(tmp_path / "absent.cache") is None
    assert read_calibration_cache(None) is None
    bad = tmp_path / "bad.cache"
    bad.write_bytes(b"images: 3f800000\n")
    with pytest.raises(EngineBuildError, match=r"bad\.cache: not a TensorRT calibration cache"):
        read_calibration_cache(bad)
    assert read_timing_cache(tmp_path / "timing.cache") == b""
    (tmp_path / "timing.cache").write_bytes(b"\x01\x02")
    assert read_timing_cache(tmp_path / "timing.cache") == b"\x01\x02"


def test_parser_errors_name_the_nodes_and_the_missing_plugin() -> None:
    issues = [
        ParserIssue(
            "UNSUPPORTED_NODE",
            "No importer registered for op",
            41,
            "/roi_heads/pool",
            "EdgeRCNN_MultiLevelRoIAlign",
        ),
        ParserIssue("INVALID_GRAPH", "bad shape", -1),
    ]
    text = format_parser_errors(Path("m.trt.onnx"), issues, plugin_loaded=False)
    assert text.startswith("m.trt.onnx: TensorRT's ONNX parser failed (2 error(s))")
    assert "node /roi_heads/pool (EdgeRCNN_MultiLevelRoIAlign): No importer registered" in text
    assert "node <graph>: bad shape" in text
    assert "--plugin-lib" in text
    assert "lacks these plugins" in format_parser_errors(Path("m.onnx"), issues, plugin_loaded=True)


def test_default_engine_path_sits_beside_the_onnx() -> None:
    assert default_engine_path(Path("out/model.trt.onnx"), "fp16") == Path("out/model.trt.fp16.engine")
    assert default_engine_path(Path("model.int8.trt.onnx"), "int8") == Path("model.int8.trt.int8.engine")


def test_build_command_parses_back_to_the_same_options(tmp_path: Path, monkeypatch) -> None:
    """The printed command, run on the target, rebuilds exactly this engine."""
    plugin = tmp_path / "lib dir" / "libedgercnn_plugins.so"
    # the parser checks that the inputs exist, as they do on the target the command is for
    monkeypatch.chdir(tmp_path)
    for made in (plugin, tmp_path / "m.trt.onnx", tmp_path / "a.onnx"):
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_bytes(b"")
    (tmp_path / "calib_data" / "synth").mkdir(parents=True)
    options = EngineOptions(
        precision="int8",
        calib_cache=Path("calib/model.calib.cache"),
        calib_images=Path("calib_data/synth"),
        workspace_mb=2048,
        opt_level=5,
        timing_cache=Path("t.cache"),
        dla_core=1,
        batch=BatchProfile(1, 2, 4),
        plugin_lib=plugin,
        device=1,
    )
    command = build_command(Path("m.trt.onnx"), Path("m.engine"), options)
    argv = shlex.split(command)
    assert argv[:2] == ["edgercnn", "build"]
    args = build_parser("edgercnn build", build_verb).parse_args(argv[2:])
    assert args.onnx == Path("m.trt.onnx") and args.engine == Path("m.engine")
    assert options_from_args(args) == options
    plain = EngineOptions()
    assert (
        options_from_args(
            build_parser("edgercnn build", build_verb).parse_args(
                shlex.split(build_command(Path("a.onnx"), Path("a.engine"), plain))[2:]
            )
        )
        == plain
    )


def test_options_validation_names_the_bad_value(tmp_path: Path) -> None:
    for options, expected in [
        (EngineOptions(precision="int4"), "precision 'int4'"),
        (EngineOptions(opt_level=7), "optimization level 7"),
        (EngineOptions(workspace_mb=0), "workspace 0 MB"),
        (EngineOptions(plugin_lib=tmp_path / "nope.so"), "nope.so: plugin library not found"),
        (EngineOptions(calib_images=tmp_path / "nowhere"), "nowhere: calibration image folder not found"),
    ]:
        with pytest.raises(EngineBuildError, match=expected):
            options.validate()
