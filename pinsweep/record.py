"""One CSV row per job: every config key its own column, the metrics, the status, the environment
(captured by pinsweep.job.environment, beside the job: reading rows never imports torch).

Each job writes `row.csv` in its own job folder (Hydra gives every job one), via a temporary file and
an atomic rename: concurrent jobs never share a file, and a killed job leaves either no row or a
whole one. Rows are read back with pandas; a job folder without a row is reported as `missing`, and a
row that cannot be read (sweep folders get synced, copied and edited) as `corrupt`, with the reason.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from pinsweep.config import GROUP_SCHEMAS
from pinsweep.outputs import replacing

if TYPE_CHECKING:  # pandas costs start-up: imported only where rows are read or written
    import pandas as pd

ROW_FILE = "row.csv"
RANKS_FILE = "ranks.csv"  # beside it: each rank's own figures, one line per rank (pinsweep.job.ranks)
RANK_FIGURES = "rank_figures"  # the job's metrics hold each rank's figures here, for RANKS_FILE
NESTED_SWEEP_MARK = ".pinsweep-sweep"  # a folder holding this is a sweep of its own, not jobs of the one around it
CONFIG_GROUPS = tuple(GROUP_SCHEMAS)  # the config groups whose keys become row columns


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """`{"loader": {"num_workers": 2}}` -> `{"loader.num_workers": 2}`; dicts and lists as JSON."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and key != "kwargs":
                walk(value, f"{name}.")
            elif isinstance(value, (dict, list)):
                flat[name] = json.dumps(value, sort_keys=True)
            else:
                flat[name] = value

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


# ------------------------------------------------------------------------------------- throughput


def throughput_of(row: dict[str, Any]) -> float:
    """A row's steady-state items per second in its unit; a row written before the unit existed has
    only images_per_s, which is the same figure."""
    value = row.get("throughput")
    if value is None or value != value:  # absent or NaN
        value = row.get("images_per_s", float("nan"))
    return float(value)


def unit_of(row: dict[str, Any]) -> str:
    """What a row's throughput counts (train.unit): `images` for rows written before the unit existed."""
    unit = row.get("unit")
    return unit if isinstance(unit, str) and unit else "images"


# pinsweep.job.step's, which imports torch: the shipped datasets, whose items are images, and train.step's default
IMAGE_DATASETS = ("cifar10", "synthetic", "imagefolder")
CLASSIFICATION_STEP = "pinsweep.job.step.classification"


def configured_unit(row: dict[str, Any]) -> str:
    """What a job's throughput would count, from its config columns alone, for a row that counted nothing
    (the job failed first): train.unit, or its default by pinsweep.job.step.unit_of's rule, images for
    the shipped image datasets and for the classification step, samples for everything else. A row with
    no config (a job folder without one) says images, as rows always did."""

    def given(key: str) -> str | None:
        value = row.get(key)
        return value if isinstance(value, str) and value not in ("", "null") else None

    if given("train.unit"):
        return given("train.unit")
    if "data.name" not in row and "train.step" not in row:
        return "images"
    default_step = given("train.step") in (None, CLASSIFICATION_STEP) and not given("train.count")
    return "images" if given("data.name") in IMAGE_DATASETS or default_step else "samples"


def evaluation_line(row: dict[str, Any]) -> str:
    """`test accuracy 71.2` / `test loss 2.31`: the row's test_<name> figures, for a log line."""
    figures = [
        f"test {key[5:]} {value:.4g}" for key, value in row.items() if key.startswith("test_") and _number(value)
    ]
    return ", ".join(figures) or "no test figures"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def with_throughput(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with `throughput` and `unit` filled in for every row, including those written before they
    existed (images_per_s, images): what the summary computes on."""
    import pandas

    legacy = rows["images_per_s"] if "images_per_s" in rows else pandas.Series(float("nan"), index=rows.index)
    throughput = rows["throughput"].astype(float).fillna(legacy) if "throughput" in rows else legacy
    known = rows["unit"].dropna() if "unit" in rows else pandas.Series(dtype=object)
    # a job that failed before it counted anything has no unit: its sweep's (one unit a sweep), or, when no job
    # counted anything, what their config says (tokens, samples, ...: never images by default)
    if len(known):
        unit = rows["unit"].fillna(known.iloc[0])
    else:
        unit = pandas.Series([configured_unit(row) for row in rows.to_dict("records")], index=rows.index)
    return rows.assign(throughput=throughput.astype(float), unit=unit)


def write_row(job_dir: str | Path, row: dict[str, Any]) -> Path:
    """Write one row as `job_dir/row.csv`, atomically (temporary file in the same folder + rename)."""
    import pandas

    cells = {key: json.dumps(value) if isinstance(value, (list, dict)) else value for key, value in row.items()}
    return _write_csv(Path(job_dir), ROW_FILE, pandas.DataFrame([cells]))


def write_ranks(job_dir: str | Path, figures: list[dict[str, Any]]) -> Path:
    """Write each rank's figures as `job_dir/ranks.csv`, atomically as the row."""
    import pandas

    return _write_csv(Path(job_dir), RANKS_FILE, pandas.DataFrame(figures))


def _write_csv(job_dir: Path, name: str, frame: pd.DataFrame) -> Path:
    """Whole or not at all, synced before the rename (a crash keeps the old row or the new one), with the
    user's umask (pinsweep.outputs.replacing)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    target = job_dir / name
    with replacing(target, sync=True) as temporary:
        frame.to_csv(temporary, index=False)
    return target


def set_aside(job_dir: str | Path, why: str = "replaced") -> Path:
    """Rename a job folder's row to `row-<why>-<utc time>.csv`: kept on disk, no longer read as the
    job's row, so that the job's new row never destroys a finished (or a damaged) one."""
    source = Path(job_dir) / ROW_FILE
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = source.with_name(f"row-{why}-{stamp}.csv")
    os.replace(source, target)
    ranks = source.with_name(RANKS_FILE)
    if ranks.exists():  # the ranks of that row go with it
        os.replace(ranks, ranks.with_name(f"ranks-{why}-{stamp}.csv"))
    return target


class CorruptRow(ValueError):
    """A row file that is not the one row write_row wrote; the message names the file and what is wrong."""


def _read_row_file(path: Path) -> pd.DataFrame:
    """One row file as a one-row frame, or CorruptRow. Checked with the csv module first: pandas reads a
    truncated line as a shorter row (NaN to its end) and a header alone as an empty frame."""
    import pandas

    try:
        text = path.read_text()
        if not text:
            raise CorruptRow(f"{path}: empty file")
        if not text.endswith("\n"):  # write_row ends its one line with a newline
            raise CorruptRow(f"{path}: truncated (ends mid-line)")
        records = list(csv.reader(text.splitlines(keepends=True), strict=True))
        if len(records) != 2:
            raise CorruptRow(f"{path}: {len(records)} CSV lines, expected a header and one row")
        header, cells = records
        if len(cells) != len(header):
            raise CorruptRow(f"{path}: {len(cells)} cells under {len(header)} columns (truncated or edited)")
        if "status" not in header:
            raise CorruptRow(f"{path}: no status column (not a pinsweep row)")
        return pandas.read_csv(path).copy()  # copy(): one block per dtype, not one per column (a wide row)
    except (UnicodeDecodeError, csv.Error, pandas.errors.ParserError) as error:
        raise CorruptRow(f"{path}: unreadable ({error})") from error


def read_row(job_dir: str | Path) -> dict[str, Any] | None:
    """The job's row as a dict, None when it has none; CorruptRow when its file is damaged."""
    path = Path(job_dir) / ROW_FILE
    if not path.exists():
        return None
    return _read_row_file(path).iloc[0].to_dict()


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job folders of a sweep: those Hydra made (they hold .hydra/) or that hold a row; not those of a
    sweep of its own inside it (a folder marked NESTED_SWEEP_MARK, as auto-tune's confirm/)."""
    sweep_dir = Path(sweep_dir)
    found = {p.parent for p in sweep_dir.rglob(ROW_FILE)}
    found |= {p.parent for p in sweep_dir.rglob(".hydra") if p.parent != sweep_dir}
    nested = {p.parent for p in sweep_dir.rglob(NESTED_SWEEP_MARK) if p.parent != sweep_dir}
    found = {p for p in found if not nested.intersection(p.parents)}
    return sorted(found, key=lambda p: (len(p.parts), _natural(p.name), str(p)))


def _natural(name: str) -> tuple:
    return (0, int(name)) if name.isdigit() else (1, name)


def _missing_row(job_dir: Path, status: str = "missing", error: str = "") -> dict[str, Any]:
    """A job that left no row (killed, or never ran), or a damaged one: its config still tells which
    group it was."""
    row: dict[str, Any] = {"status": status, "error": error or "job folder has no row.csv: killed or never finished"}
    composed = job_dir / ".hydra" / "config.yaml"
    if composed.exists():
        config = OmegaConf.load(composed)
        row.update(flatten_config(OmegaConf.masked_copy(config, [g for g in CONFIG_GROUPS if g in config])))
    return row


def read_rows(sweep_dir: str | Path) -> pd.DataFrame:
    """All job rows under a sweep folder; a job folder without a row becomes a `missing` row, one whose
    row cannot be read a `corrupt` row whose error names the file and the reason."""
    import pandas

    frames = []
    for job_dir in job_dirs(sweep_dir):
        path = job_dir / ROW_FILE
        try:
            frame = _read_row_file(path) if path.exists() else pandas.DataFrame([_missing_row(job_dir)])
        except CorruptRow as damage:
            frame = pandas.DataFrame([_missing_row(job_dir, "corrupt", str(damage))])
        frame["job.dir"] = str(job_dir)
        frames.append(frame)
    if not frames:
        return pandas.DataFrame()
    return pandas.concat(frames, ignore_index=True)
