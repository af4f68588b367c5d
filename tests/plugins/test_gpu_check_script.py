"""scripts/gpu_check.py without a GPU: its arguments, the steps and commands it plans for a GPU, the
dry run, the refusal where no GPU is visible, and the docs/benchmarks.md section it writes (only its
own span, replaced on a rerun). The GPU run itself happens on a machine with one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _load()
H200 = gpu_check.Gpu("NVIDIA H200", "9.0", "2.5.1+cu124", "12.4")


def test_arguments_and_their_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    args = gpu_check.parse_args([])
    assert args.budget_s == 480 and args.repeats == 30 and not args.dry_run
    for bad in (["--budget-s", "10"], ["--repeats", "0"], ["--arch", "sm_90"]):
        with pytest.raises(SystemExit) as stopped:
            gpu_check.parse_args(bad)
        assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--budget-s 10: at least 60 seconds" in err and "--arch 'sm_90'" in err


def test_plan_builds_for_this_gpu_then_tests_and_benchmarks_with_that_build(tmp_path: Path) -> None:
    args = gpu_check.parse_args(["--build-dir", str(tmp_path / "b"), "--repeats", "7", "--jobs", "16"])
    steps = gpu_check.plan_steps(args, H200, "/usr/local/cuda/bin/nvcc", python="python")
    assert [s.name for s in steps] == ["configure", "build", "gpu tests", "benchmarks"]
    configure, build, tests, bench = steps
    assert "-DEDGERCNN_CUDA_ARCHITECTURES=90" in configure.command
    assert "-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc" in configure.command
    assert build.command == ["cmake", "--build", str(tmp_path / "b"), "-j", "16"]
    assert tests.command[:3] == ["python", "-m", "pytest"] and "gpu" in tests.command
    assert "tests/plugins/test_plugins_gpu.py" in tests.command
    kernels = str(tmp_path / "b" / "libedgercnn_kernels.so")
    assert tests.env["EDGERCNN_PLUGIN_CUDA_LIB"] == kernels == bench.env["EDGERCNN_PLUGIN_CUDA_LIB"]
    assert bench.command[1:] == [
        "benchmarks/bench_plugins_gpu.py",
        "--device",
        "cuda",
        "--no-write",
        "--repeats",
        "7",
    ]
    assert gpu_check.plan_steps(gpu_check.parse_args(["--arch", "87"]), H200, None)[0].command[-1] == (
        "-DEDGERCNN_CUDA_ARCHITECTURES=87"
    )
    # no TensorRT -> no plugin library built -> the variable is dropped so the engine tests skip
    kept = gpu_check.without_missing_libraries(tests)
    assert "EDGERCNN_PLUGIN_LIB" not in kept.env


def test_dry_run_lists_the_steps_anywhere_and_a_real_run_needs_a_gpu() -> None:
    dry = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0, dry.stderr
    assert "1. configure: cmake -S" in dry.stdout and "4. benchmarks:" in dry.stdout
    assert "docs/benchmarks.md" in dry.stdout
    code = "import sys, gpu_check; gpu_check.detect_gpu = lambda: None; sys.exit(gpu_check.main([]))"
    real = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=SCRIPT.parent
    )
    assert real.returncode == 2
    assert real.stderr.strip() == (
        "gpu_check: no CUDA GPU visible to torch here; nothing run (use --dry-run to see the steps)"
    )


def _results(bench_ok: bool = True) -> list:
    R = gpu_check.StepResult
    return [
        R("configure", 0, 3.2, "-- edgercnn: ..."),
        R("build", 0, 61.0, "[100%] Built target edgercnn_kernels"),
        R("gpu tests", 0, 40.4, "....\n========== 34 passed, 2 skipped in 40.1s ==========\n"),
        R(
            "benchmarks",
            0 if bench_ok else 1,
            30.0,
            "| op | ours | torchvision |\n| --- | --- | --- |\n| NMS | 1 ms | 2 ms |",
        ),
    ]


def test_markdown_section_names_the_gpu_every_step_and_the_benchmark_table() -> None:
    lines = gpu_check.markdown_section(H200, _results(), 480, "2026-12-02 01:00 UTC")
    text = "\n".join(lines)
    assert "**NVIDIA H200** (compute capability 9.0)" in text and "Total 135 s of a 480 s budget" in text
    assert "| gpu tests | passed: 34 passed, 2 skipped in 40.1s | 40 |" in text
    assert "| NMS | 1 ms | 2 ms |" in text
    failed = "\n".join(gpu_check.markdown_section(H200, _results(bench_ok=False), 480, "now"))
    assert (
        "| benchmarks | FAILED (exit 1) | 30 |" in failed
        and "Last lines of the failed step 'benchmarks'" in failed
    )
    stopped = [gpu_check.StepResult("build", None, 300.0, "compiling...")]
    assert "| build | stopped at its time limit | 300 |" in "\n".join(
        gpu_check.markdown_section(H200, stopped, 480, "x")
    )


def test_section_replaces_only_its_own_span_of_the_benchmarks_doc(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## CPU figures\n\nkept as written\n")
    gpu_check.write_section(["first run"], "GPU check: NVIDIA H200", doc)
    gpu_check.write_section(["second run"], "GPU check: NVIDIA H200", doc)
    text = doc.read_text()
    assert text.count(gpu_check.START) == 1 and "first run" not in text and "second run" in text
    assert text.startswith("# Benchmarks\n\n## CPU figures\n\nkept as written\n")
    assert "## GPU check: NVIDIA H200" in text
