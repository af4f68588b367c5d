"""One command for everything that needs a CUDA GPU, within a time budget (default 8 minutes).

On a machine with a CUDA GPU (and torch with CUDA, torchvision, cmake, nvcc):

1. builds ``plugins/`` with CMake for this GPU's architecture only (and the TensorRT plugin
   library too where TensorRT is found);
2. runs the GPU tests against torchvision's CUDA ops with that build: FP32 RoIAlign to 1e-5,
   FP16 within 4e-3, NMS indices exactly (``tests/plugins/test_plugins_gpu.py``), plus the
   TensorRT engine tests where TensorRT is installed (they skip themselves otherwise);
3. runs the kernel benchmarks (fused multi-level RoIAlign vs torchvision ``MultiScaleRoIAlign``,
   1000 RoIs, 256 channels, 7x7, four FPN levels of an 800x1344 input; NMS vs ``batched_nms`` on
   5000 boxes) with ``benchmarks/bench_plugins_gpu.py``;
4. writes what it found as the "GPU check" section of ``docs/benchmarks.md``, headed by the GPU's
   name (rerunning replaces that section only), and exits non-zero if any step failed.

    python scripts/gpu_check.py [--budget-s 480] [--repeats 30] [--no-write]
    python scripts/gpu_check.py --dry-run      # the steps and commands, anywhere (no GPU needed)

Each step gets what is left of the budget; a step that runs out is stopped and reported as such.
Everything here but ``detect_gpu`` and ``run_step`` is plain Python, tested without a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
START = "<!-- gpu-check:START -->"
END = "<!-- gpu-check:END -->"
DEFAULT_BUDGET_S = 480


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str  # "9.0"
    torch_version: str = ""
    cuda_version: str = ""

    @property
    def arch(self) -> str:
        """CMake's architecture number: "9.0" -> "90" ("native" while the GPU is unknown)."""
        return self.compute_capability.replace(".", "") or "native"


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    share: float = 1.0  # fraction of the remaining budget this step may use


@dataclass
class StepResult:
    name: str
    returncode: int | None  # None: stopped at its time limit
    seconds: float
    output: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget-s", type=int, default=DEFAULT_BUDGET_S, help="time for all steps (default 480)"
    )
    parser.add_argument("--repeats", type=int, default=30, help="benchmark repeats (default 30)")
    parser.add_argument(
        "--build-dir", type=Path, default=REPO / "plugins" / "build-gpucheck", help="CMake build folder"
    )
    parser.add_argument("--arch", help="CUDA architecture, e.g. 87 (default: the GPU's own)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel build jobs")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--dry-run", action="store_true", help="list the steps and commands, run nothing")
    args = parser.parse_args(argv)
    if args.budget_s < 60:
        parser.error(f"--budget-s {args.budget_s}: at least 60 seconds")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: at least 1")
    if args.arch is not None and not re.fullmatch(r"\d{2,3}[af]?", args.arch):
        parser.error(f"--arch {args.arch!r}: a CUDA architecture number such as 87 or 90")
    return args


def plan_steps(
    args: argparse.Namespace, gpu: Gpu, nvcc: str | None, python: str = sys.executable
) -> list[Step]:
    """The commands, in order; each later step uses the library the build step made."""
    build = Path(args.build_dir)
    arch = args.arch or gpu.arch
    configure = ["cmake", "-S", str(REPO / "plugins"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    configure += [f"-DEDGERCNN_CUDA_ARCHITECTURES={arch}"]
    if nvcc:
        configure.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    kernels = build / "libedgercnn_kernels.so"
    env = {
        "EDGERCNN_PLUGIN_CUDA_LIB": str(kernels),
        "EDGERCNN_PLUGIN_LIB": str(build / "libedgercnn_plugins.so"),
    }
    tests = ["tests/plugins/test_plugins_gpu.py", "tests/runtime/backends/tensorrt/test_engine_device.py"]
    return [
        Step("configure", configure, share=0.2),
        Step("build", ["cmake", "--build", str(build), "-j", str(args.jobs)], share=0.6),
        Step(
            "gpu tests",
            [python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "gpu", *tests],
            env=env,
            share=0.6,
        ),
        Step(
            "benchmarks",
            [
                python,
                "benchmarks/bench_plugins_gpu.py",
                "--device",
                "cuda",
                "--no-write",
                "--repeats",
                str(args.repeats),
            ],
            env={"EDGERCNN_PLUGIN_CUDA_LIB": str(kernels)},
            share=1.0,
        ),
    ]


def pytest_summary(output: str) -> str:
    """pytest's last summary line, e.g. '34 passed, 2 skipped in 41.2s' (or '' if none)."""
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed|error|skipped).*?)\s*=*$", output, flags=re.MULTILINE)
    return found[-1] if found else ""


def markdown_section(gpu: Gpu, results: Sequence[StepResult], budget_s: int, when: str) -> list[str]:
    """The lines of the section (without its title and markers)."""
    total = sum(r.seconds for r in results)
    lines = [
        f"`python scripts/gpu_check.py` on **{gpu.name}** (compute capability {gpu.compute_capability}), "
        f"{when}; torch {gpu.torch_version or '?'}, CUDA {gpu.cuda_version or '?'}, {platform.machine()}. "
        f"Total {total:.0f} s of a {budget_s} s budget.",
        "",
        "| step | result | seconds |",
        "| --- | --- | --- |",
    ]
    for r in results:
        if r.returncode is None:
            status = "stopped at its time limit"
        elif r.passed:
            status = "passed"
        else:
            status = f"FAILED (exit {r.returncode})"
        if r.name == "gpu tests" and pytest_summary(r.output):
            status += f": {pytest_summary(r.output)}"
        lines.append(f"| {r.name} | {status} | {r.seconds:.0f} |")
    bench = next((r for r in results if r.name == "benchmarks" and r.passed), None)
    if bench is not None:
        lines += [
            "",
            "Kernel benchmarks (as `benchmarks/bench_plugins_gpu.py --device cuda` printed them):",
            "",
        ]
        lines += [line for line in bench.output.splitlines() if line.strip()]
    failed = [r for r in results if not r.passed]
    for r in failed:
        tail = "\n".join(r.output.strip().splitlines()[-15:])
        lines += ["", f"Last lines of the failed step '{r.name}':", "", "```", tail, "```"]
    return lines


def write_section(lines: list[str], title: str, doc: Path = DOC) -> Path:
    """Replace (or append) this script's section of docs/benchmarks.md; nothing else changes."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from doc_sections import write_section as write  # the benchmarks' one writer
    finally:
        sys.path.pop(0)
    return write(START, END, title, lines, doc)


def detect_gpu() -> Gpu | None:
    """The first CUDA device as torch sees it (None without torch CUDA or a device)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return Gpu(torch.cuda.get_device_name(0), f"{major}.{minor}", torch.__version__, str(torch.version.cuda))


def run_step(step: Step, timeout_s: float) -> StepResult:
    """Run one step from the repository root, output captured (and echoed after it ends)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            step.command,
            cwd=REPO,
            env={**os.environ, **step.env},
            capture_output=True,
            text=True,
            timeout=max(timeout_s, 1.0),
            check=False,
        )
        code: int | None = done.returncode
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        output = _text(exc.stdout) + _text(exc.stderr)
    return StepResult(step.name, code, time.perf_counter() - started, output)


def without_missing_libraries(step: Step) -> Step:
    """Drop library variables whose file the build did not make (no TensorRT: no plugin library);
    the runtime refuses a named library that does not exist, the tests then skip instead."""
    env = {k: v for k, v in step.env.items() if not v.endswith(".so") or Path(v).is_file()}
    return Step(step.name, step.command, env, step.share)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def dry_run_text(steps: Sequence[Step], gpu: Gpu, budget_s: int) -> str:
    lines = [f"GPU check plan for {gpu.name} (sm_{gpu.arch}), budget {budget_s} s:"]
    for i, step in enumerate(steps, 1):
        env = " ".join(f"{k}={v}" for k, v in step.env.items())
        lines.append(f"{i}. {step.name}: {(env + ' ') if env else ''}{' '.join(step.command)}")
    lines.append(f"then: write the '{START}' section of {DOC.relative_to(REPO)} (unless --no-write)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    gpu = detect_gpu()
    nvcc = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if Path(p).is_file()), None)
    if args.dry_run:
        shown = gpu or Gpu("<the GPU found at run time>", "")
        print(dry_run_text(plan_steps(args, shown, nvcc), shown, args.budget_s))
        return 0
    if gpu is None:
        print(
            "gpu_check: no CUDA GPU visible to torch here; nothing run (use --dry-run to see the steps)",
            file=sys.stderr,
        )
        return 2
    if shutil.which("cmake") is None or nvcc is None:
        print("gpu_check: cmake and nvcc are needed to build the kernels for this GPU", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.budget_s
    results: list[StepResult] = []
    for step in plan_steps(args, gpu, nvcc):
        left = deadline - time.monotonic()
        if left <= 1:
            results.append(StepResult(step.name, None, 0.0, "no time left in the budget"))
            continue
        print(f"== {step.name} (up to {left * step.share:.0f} s): {' '.join(step.command)}", flush=True)
        result = run_step(without_missing_libraries(step), left * step.share)
        print(result.output.rstrip(), flush=True)
        results.append(result)
        if not result.passed and step.name in ("configure", "build"):
            break  # nothing later can run without the library
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = markdown_section(gpu, results, args.budget_s, when)
    print("\n".join(lines))
    if not args.no_write:
        print(f"wrote {write_section(lines, f'GPU check: {gpu.name}')}", file=sys.stderr)
    return 0 if results and all(r.passed for r in results) and len(results) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
