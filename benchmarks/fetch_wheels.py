"""Fetch, here, the wheels benchmarks/gpu_check.sh installs on the lent GPU machine, which reaches no registry.

    python3 benchmarks/fetch_wheels.py                      # for that machine's Python 3.12, into benchmarks/wheels/
    python3 benchmarks/fetch_wheels.py --python-version 3.11  # for a dry run here, in a 3.11 venv

What is fetched: every package pinsweep needs (pyproject.toml's dependencies, and the test runner the check
uses: pytest, pytest-timeout, pytest-xdist) that the machine's image lacks, and what those need in turn, less
what the image holds (IMAGE below; the device notes' KINDS.md list). Today that is hydra-core, omegaconf and
antlr4-python3-runtime, all pure Python (py3-none-any): one folder serves 3.11 and 3.12 alike.
Each is pinned to the version installed in the interpreter running this script (the versions the suite is
tested with), else the newest the requirement allows. A name with no wheel on the index (antlr4-python3-runtime
4.9.3 has an sdist only) is built here with `pip wheel --no-deps`, which is only right for pure Python: a built
wheel that is not py3-none-any is refused. pinsweep itself is not carried as a wheel: the working tree travels
with every call and gpu_check.sh runs it from there, so the code measured is always the code committed, never
a wheel built before the last fix.

Downloads for another Python (--python-version) need --only-binary=:all:, as pip says; the folder keeps one
version of each name (pip stops at two) and its size is printed at the end (the call's carry limit is 64 MiB).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
# The Python packages of the GPU machines' image ('cuda', KINDS.md "Python packages already there", read there
# on 2026-11-17; python3 is Python 3.12.3 at /opt/torch/.venv/bin/python3, torch 2.11.0, torchvision 0.26.0).
IMAGE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"""
IMAGE_NAMES = {canonicalize_name(name) for name in IMAGE.split()}
CHECK_RUNS_WITH = ["pytest", "pytest-timeout", "pytest-xdist"]  # gpu_check.sh's pytest stage (pyproject's addopts)
# the wheel tags pip matches exactly on --platform (the device README's list)
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def wanted() -> list[Requirement]:
    """pinsweep's own requirements and the test runner's: the roots of what the check imports."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]] + [Requirement(name) for name in CHECK_RUNS_WITH]


def pinned(requirement: Requirement) -> str:
    """NAME==VERSION: the version installed here when it satisfies the requirement, else the newest it allows."""
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return str(requirement)
    if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
        return str(requirement)
    return f"{requirement.name}=={version}"


def pip(*args: str) -> None:
    print("+ pip", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def wheels(folder: Path) -> dict[str, Path]:
    """The folder's wheels by canonical name; two versions of one name are refused (pip would stop there)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.whl")):
        name = canonicalize_name(parse_wheel_filename(path.name)[0])
        if name in found:
            sys.exit(f"{folder} holds two wheels of {name}: {found[name].name} and {path.name}; remove one")
        found[name] = path
    return found


def requires(path: Path, python_version: str) -> list[Requirement]:
    """A wheel's Requires-Dist whose markers hold on Linux x86-64 under python_version, extras left out."""
    with zipfile.ZipFile(path) as archive:
        metadata = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        lines = archive.read(metadata).decode().splitlines()
    environment = {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "extra": "",
    }
    out = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if requirement.marker is None or requirement.marker.evaluate(environment):
            out.append(requirement)
    return out


def fetch(requirement: Requirement, dest: Path, python_version: str) -> None:
    """One wheel: the index's, for the target Python and platform; else built here when it is pure Python."""
    spec = pinned(requirement)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    try:
        pip(
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(dest),
            spec,
        )
        return
    except subprocess.CalledProcessError:
        print(f"no wheel of {spec} for Python {python_version}: building it here (pure Python only)", flush=True)
    before = set(dest.glob("*.whl"))
    pip("wheel", "-q", "--no-deps", "--no-binary", requirement.name, "-w", str(dest), spec)
    for path in set(dest.glob("*.whl")) - before:
        tags = parse_wheel_filename(path.name)[3]
        if not all(tag.abi == "none" and tag.platform == "any" for tag in tags):
            path.unlink()
            sys.exit(f"{spec} built as {path.name}, not pure Python: build it for Python {python_version} on x86-64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.12", help="the target interpreter's X.Y (default: 3.12)")
    parser.add_argument("--dest", type=Path, default=ROOT / "benchmarks" / "wheels", help="the wheel folder")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)

    queue = wanted()
    seen: set[str] = set()
    while queue:
        requirement = queue.pop(0)
        name = canonicalize_name(requirement.name)
        if name in seen or name in IMAGE_NAMES:
            continue
        seen.add(name)
        have = wheels(args.dest).get(name)
        if have is None or not requirement.specifier.contains(str(parse_wheel_filename(have.name)[1]), True):
            if have is not None:
                have.unlink()  # another version than the one wanted: one of each name
            fetch(requirement, args.dest, args.python_version)
            have = wheels(args.dest)[name]
        queue.extend(requires(have, args.python_version))

    carried = wheels(args.dest)
    extra = sorted(set(carried) - seen)
    for name in extra:  # left from an older list: the image has it now, or pinsweep no longer needs it
        path = carried.pop(name)
        print(f"removing {path.name}: not needed")
        path.unlink()
    size = sum(path.stat().st_size for path in args.dest.iterdir() if path.is_file())
    print(f"{args.dest} for Python {args.python_version}: {len(carried)} wheels, {size / 2**20:.2f} MiB")
    for path in carried.values():
        print(f"  {path.name}  {path.stat().st_size / 2**10:.0f} KiB")
    image = sorted(name for name in (canonicalize_name(r.name) for r in wanted()) if name in IMAGE_NAMES)
    print("the image holds the rest: " + ", ".join(image))


if __name__ == "__main__":
    main()
