"""PNG plots of a summarized sweep, written into the sweep folder (matplotlib, Agg backend: no display).

- `throughput.png`  <unit>/s per config with its interval and the compute-only ceiling beside it
- `heatmap.png`     <unit>/s (geometric mean) over two swept axes (the two with the largest effect when more
                    than two are swept, the others held at their baseline level)
- `breakdown.png`   where each config's steady-state step time goes: data wait, copy, compute

Figures are drawn at a fixed width and DPI without `bbox_inches="tight"`, so a PNG's pixel size is
known from its config count (`figure_px`), which the tests check.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: plots are written on machines without a display (SLURM, CI)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.transforms import blended_transform_factory

from pinsweep.analysis.summarize import OVERALL, Tables, level_key
from pinsweep.outputs import output, replacing
from pinsweep.present.wording import config_label, config_status, imprecise_ceiling, per_s, per_s_short, short_name

log = logging.getLogger("pinsweep.present.plots")

DPI = 100
WIDTH_IN = 11.0
BASE_HEIGHT_IN = 2.4  # title, axis labels and legend
BAR_HEIGHT_IN = 0.45  # per config row
HEATMAP_SIZE_IN = (WIDTH_IN, 5.0)
BAR_COLOR = "#3b75af"
BASELINE_COLOR = "#9aa5b1"
PARTS = (  # column in summary.csv, legend label, colour
    ("data_wait_frac", "waiting for data", "#e8743b"),
    ("copy_frac", "host-to-device copy", "#f2c14e"),
    ("compute_frac", "compute (fwd, bwd, step)", "#3b75af"),
)
OTHER_COLOR = "#d0d4d9"


def _first(rows: pd.DataFrame, column: str) -> str:
    if column not in rows:
        return ""
    values = rows[column].dropna().astype(str)
    values = values[values != ""]
    return values.iloc[0] if len(values) else ""


def hardware(rows: pd.DataFrame) -> str:
    """`CPU: AMD EPYC (2 cores)` or `NVIDIA H100 80GB HBM3 (cuda)`: the device the numbers are for."""
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    ok = ok if len(ok) else rows
    device = _first(ok, "device")
    cpu = _first(ok, "env.cpu_model")
    cores = _first(ok, "env.cpu_count")
    cpu_text = f"{cpu} ({norm_int(cores)} cores)" if cores else cpu
    if device.startswith("cuda"):
        return f"{_first(ok, 'env.device_name') or device} ({device}), host {cpu_text}"
    return f"CPU: {cpu_text}" if cpu_text else "CPU"


def norm_int(text: str) -> str:
    try:
        return str(int(float(text)))
    except ValueError:
        return text


def setup_title(tables: Tables) -> str:
    """What was measured, for titles: model, data (and its pipeline), batch size, device."""
    rows, axes = (tables.rows if tables.rows is not None else pd.DataFrame()), tables.axes
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    ok = ok if len(ok) else rows

    def fixed(column: str) -> str:
        return "" if column in axes else _first(ok, column)

    model = fixed("model.name") or "model varies"
    data = fixed("data.name") or "data varies"
    pipeline = fixed("data.pipeline")
    batch = fixed("loader.batch_size")
    parts = [f"model {model}", f"data {data}" + (f" ({pipeline} pipeline)" if pipeline else "")]
    if batch:
        parts.append(f"batch {norm_int(batch)}")
    inactive = tables.inactive
    caveat = f" | {', '.join(short_name(a, axes) for a in inactive)} inactive: no accelerator" if inactive else ""
    return ", ".join(parts) + f" | {hardware(rows)}{caveat}"


# ------------------------------------------------------------------------------------------ figures


def figure_px(n_configs: int) -> tuple[int, int]:
    """(width, height) in pixels of the per-config bar plots."""
    return round(WIDTH_IN * DPI), round(_bar_height_in(n_configs) * DPI)


def _bar_height_in(n_configs: int) -> float:
    return BASE_HEIGHT_IN + BAR_HEIGHT_IN * max(n_configs, 2)


def _ordered(summary: pd.DataFrame) -> pd.DataFrame:
    """Fastest config on top (barh draws the first row at the bottom, so sort ascending)."""
    return summary.sort_values("ips_geomean", ascending=True, na_position="first").reset_index(drop=True)


def _interval(record: pd.Series) -> tuple[float, float] | None:
    """The 95% CI of the geometric mean, else min-max over repeats, else none (one run)."""
    for low, high in (("ips_ci_low", "ips_ci_high"), ("ips_min", "ips_max")):
        lo, hi = record.get(low, math.nan), record.get(high, math.nan)
        if not (pd.isna(lo) or pd.isna(hi)) and (hi > lo or record.get("n", 0) > 1):
            return float(lo), float(hi)
    return None


def plot_throughput(tables: Tables, path: Path) -> Path:
    summary, rows, axes = tables.summary, tables.rows, tables.axes
    data = _ordered(summary)
    labels = [config_label(r, axes) for _, r in data.iterrows()]
    means = data["ips_geomean"].astype(float).fillna(0.0).to_numpy()
    y = np.arange(len(data))
    fig, ax = plt.subplots(figsize=(WIDTH_IN, _bar_height_in(len(data))), dpi=DPI, layout="constrained")
    colors = [BASELINE_COLOR if bool(b) else BAR_COLOR for b in data["baseline"]]
    ax.barh(y, means, color=colors, height=0.6)

    intervals = [_interval(r) for _, r in data.iterrows()]
    kinds = {"CI" if pd.notna(r.get("ips_ci_low")) else "range" for (_, r), i in zip(data.iterrows(), intervals) if i}
    for yi, mean, interval in zip(y, means, intervals):
        if interval:
            ax.errorbar(
                mean,
                yi,
                xerr=[[mean - interval[0]], [interval[1] - mean]],
                fmt="none",
                ecolor="black",
                capsize=4,
                lw=1.2,
            )
    ceilings = data["compute_ceiling_ips"].astype(float).to_numpy()
    has_ceiling = ~np.isnan(ceilings)
    # a ceiling too imprecise to judge efficiency by is drawn pale and named so (summary's ceiling_imprecise)
    imprecise = np.array([imprecise_ceiling(r) for _, r in data.iterrows()], dtype=bool)
    marks = {
        "compute-only ceiling (data already on device)": (has_ceiling & ~imprecise, "#c0392b"),
        "compute-only ceiling, imprecise (not a finding)": (has_ceiling & imprecise, "#e6a39b"),
    }
    ceiling_marks = []
    for label, (drawn, color) in marks.items():
        if drawn.any():
            style = {"linestyle": "none", "marker": "|", "markersize": 22, "markeredgewidth": 2.5, "color": color}
            ceiling_marks.append((ax.plot(ceilings[drawn], y[drawn], label=label, **style)[0], label))

    right = np.nanmax([*means, *ceilings[has_ceiling], *[i[1] for i in intervals if i], 1.0])
    ax.set_xlim(0, right * 1.12)
    for yi, (_, record), mean, interval, ceiling in zip(y, data.iterrows(), means, intervals, ceilings):
        if record.get("n", 0) == 0 or pd.isna(record["ips_geomean"]):
            status = config_status(record, axes, rows)
            ax.text(right * 0.01, yi, f"no successful run: {status}", va="center", color="#c0392b")
            continue
        speedup = record.get("speedup", math.nan)
        text = f"{mean:,.0f} {per_s_short(summary)}" + ("" if pd.isna(speedup) else f"  {speedup:.2f}x")
        text += "  (baseline)" if bool(record["baseline"]) else ""
        if mean > right * 0.3:  # room inside the bar
            ax.text(right * 0.01, yi, text, va="center", ha="left", color="white", fontweight="bold")
        else:  # right of whatever is drawn on this row: whisker, ceiling mark
            end = np.nanmax([mean, interval[1] if interval else mean, ceiling])
            ax.text(end + right * 0.015, yi, text, va="center", ha="left")

    ax.set_yticks(y, labels)
    ax.set_xlabel(f"training throughput, {per_s(summary)} (steady state, geometric mean over repeats)")
    interval_note = {
        frozenset({"CI"}): "error bars: 95% CI of the geometric mean",
        frozenset({"range"}): "error bars: min-max over repeats",
        frozenset({"CI", "range"}): "error bars: 95% CI of the geometric mean (min-max where no CI)",
    }.get(frozenset(kinds), "one run per config: no error bars (use train.repeat=0,1,2)")
    ax.set_title(f"Training throughput per config ({interval_note})\n{setup_title(tables)}", fontsize=11)
    handles = [plt.Rectangle((0, 0), 1, 1, color=BAR_COLOR), plt.Rectangle((0, 0), 1, 1, color=BASELINE_COLOR)]
    names = ["config", "baseline (speedups are relative to it)"]
    handles += [mark for mark, _ in ceiling_marks]
    names += [label for _, label in ceiling_marks]
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=9, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    with replacing(path) as temporary:  # whole or not at all, with the user's umask
        fig.savefig(temporary)
    plt.close(fig)
    return path


def plot_breakdown(tables: Tables, path: Path) -> Path:
    summary, axes = tables.summary, tables.axes
    data = _ordered(summary)
    y = np.arange(len(data))
    fig, ax = plt.subplots(figsize=(WIDTH_IN, _bar_height_in(len(data))), dpi=DPI, layout="constrained")
    left = np.zeros(len(data))
    segments = [(c, name, color, data[c].astype(float).fillna(0.0).to_numpy()) for c, name, color in PARTS]
    other = np.clip(1.0 - sum(seg[3] for seg in segments), 0.0, None)
    has_run = data["ips_median"].notna().to_numpy()
    other[~has_run] = 0.0
    segments.append(("other", "other (step overhead, untimed gaps)", OTHER_COLOR, other))
    for _, name, color, widths in segments:
        ax.barh(y, widths, left=left, color=color, height=0.6, label=name)
        for yi, x0, width in zip(y, left, widths):
            if width >= 0.06:
                text_color = "white" if color in (PARTS[2][2], PARTS[0][2]) else "black"
                ax.text(x0 + width / 2, yi, f"{width:.0%}", ha="center", va="center", color=text_color, fontsize=9)
        left = left + widths
    side = blended_transform_factory(ax.transAxes, ax.transData)
    for yi, (_, record) in zip(y, data.iterrows()):
        verdict = record.get("verdict")
        text = verdict if isinstance(verdict, str) and verdict else "no successful run"
        ax.text(1.01, yi, text, transform=side, va="center", ha="left", fontsize=9)
    ax.set_yticks(y, [config_label(r, axes) for _, r in data.iterrows()])
    ax.set_xlim(0, max(1.0, float(left.max())))
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of steady-state training time (median over repeats)")
    ax.set_title(f"Where the step time goes, with the bottleneck verdict at right\n{setup_title(tables)}", fontsize=11)
    fig.legend(
        *ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(segments), fontsize=9, frameon=False
    )
    with replacing(path) as temporary:  # whole or not at all, with the user's umask
        fig.savefig(temporary)
    plt.close(fig)
    return path


def heatmap_axes(tables: Tables) -> tuple[str, str] | str:
    """The two axes to plot, or the reason for no heatmap. With more than two axes, the two with the
    largest effect (largest |log ratio| of any level over the reference, every other axis fixed)."""
    effects, axes = tables.effects, tables.axes
    if len(axes) < 2:
        return f"{len(axes)} axis swept: a heatmap needs two (the throughput plot shows the configs)"
    if len(axes) == 2:
        return axes[0], axes[1]
    overall = effects[effects["held_fixed"] == OVERALL] if len(effects) else effects
    size = {
        a: float(np.nanmax(np.abs(np.log(overall.loc[overall["axis"] == a, "ratio"].astype(float)))))
        if (overall["axis"] == a).any() and overall.loc[overall["axis"] == a, "ratio"].notna().any()
        else -1.0
        for a in axes
    }
    ranked = sorted(axes, key=lambda a: -size[a])
    if size[ranked[1]] < 0:
        return "no per-axis effects were measured (every config failed?): no heatmap"
    return ranked[0], ranked[1]


def plot_heatmap(tables: Tables, pair: tuple[str, str], path: Path) -> Path | str:
    """<unit>/s (geometric mean) per (row axis, column axis) cell; other axes held at their baseline level."""
    summary, rows, axes = tables.summary, tables.rows, tables.axes
    y_axis, x_axis = pair
    if summary[x_axis].nunique() < summary[y_axis].nunique():  # more levels along x: wider than tall
        y_axis, x_axis = x_axis, y_axis
    others = [a for a in axes if a not in (y_axis, x_axis)]
    base = summary[summary["baseline"].astype(bool)]
    if others and base.empty:
        return "no baseline config to hold the other axes at: no heatmap"
    held = {a: base.iloc[0][a] for a in others}
    cells = summary
    for axis, level in held.items():
        cells = cells[cells[axis] == level]
    ys = sorted(summary[y_axis].unique(), key=level_key)
    xs = sorted(summary[x_axis].unique(), key=level_key)
    grid = np.full((len(ys), len(xs)), np.nan)
    speedups = np.full_like(grid, np.nan)
    failures: dict[tuple[int, int], str] = {}
    for _, record in cells.iterrows():
        i, j = ys.index(record[y_axis]), xs.index(record[x_axis])
        grid[i, j] = record["ips_geomean"]
        if record.get("n_failed", 0):
            failures[i, j] = config_status(record, axes, rows)
        speedups[i, j] = record.get("speedup", math.nan)
    if np.isnan(grid).all():
        return "no successful run with the other axes at baseline: no heatmap"

    fig, ax = plt.subplots(figsize=HEATMAP_SIZE_IN, dpi=DPI, layout="constrained")
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee")
    high = float(np.nanmax(grid))
    # colours from 0 images/s: a scale starting at the slowest cell would paint noise as a contrast
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower", vmin=0, vmax=high)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isnan(grid[i, j]):
                text = f"no successful run:\n{failures[i, j]}" if (i, j) in failures else "not run"
                ax.text(j, i, text, ha="center", va="center", color="#c0392b" if (i, j) in failures else "#555555")
                continue
            shade = grid[i, j] / high if high > 0 else 0.5
            text = f"{grid[i, j]:,.0f} {per_s_short(summary)}" + (
                "" if np.isnan(speedups[i, j]) else f"\n{speedups[i, j]:.2f}x"
            )
            ax.text(j, i, text, ha="center", va="center", fontsize=13, color="black" if shade > 0.6 else "white")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x_axis)
    ax.set_ylabel(y_axis)
    fig.colorbar(image, ax=ax, label=f"{per_s(summary)} (steady state, geometric mean)")
    held_text = ", ".join(f"{short_name(a, axes)}={v}" for a, v in held.items())
    held_text = f" for the two axes with the largest effect (others at {held_text})" if held else ""
    rate = per_s(summary)  # images/s, tokens/s, ...: train.unit
    ax.set_title(f"{rate[0].upper()}{rate[1:]} and speedup vs baseline{held_text}\n{setup_title(tables)}", fontsize=11)
    with replacing(path) as temporary:  # whole or not at all, with the user's umask
        fig.savefig(temporary)
    plt.close(fig)
    return path


@dataclass
class Plots:
    """The PNGs drawn for one sweep: what the report embeds, and why any other was not drawn."""

    written: dict[str, Path] = field(default_factory=dict)  # name -> path
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    unwritten: list[Path] = field(default_factory=list)  # drawn, but the file could not be written (a full disk)


def make_plots(tables: Tables, sweep_dir: str | Path) -> Plots:
    """Write the PNGs into the sweep folder. A plot that fails is logged and skipped so that the others,
    and the report, still get made."""
    sweep_dir = Path(sweep_dir)
    written: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    unwritten: list[Path] = []
    pair = heatmap_axes(tables)
    jobs: dict[str, Any] = {
        "throughput": lambda p: plot_throughput(tables, p),
        "heatmap": (lambda p: plot_heatmap(tables, pair, p)) if isinstance(pair, tuple) else pair,
        "breakdown": lambda p: plot_breakdown(tables, p),
    }
    for name, job in jobs.items():
        path = sweep_dir / f"{name}.png"
        if isinstance(job, str):
            skipped[name] = job
            continue
        result: Path | str = "not written"
        try:
            with output(path, unwritten):  # a full disk: one line, no partial PNG, and on to the next
                result = job(path)
        except Exception as error:  # one broken plot must not cost the others or the report
            log.exception("%s.png not drawn", name)
            result = f"{type(error).__name__}: {error}"
        if path in unwritten:
            plt.close("all")  # the figure whose savefig failed
            continue
        if isinstance(result, Path):
            written[name] = result
        else:
            skipped[name] = result
    for name, reason in skipped.items():
        (sweep_dir / f"{name}.png").unlink(missing_ok=True)  # a plot from an earlier report would mislead
        log.info("%s.png skipped: %s", name, reason)
    return Plots(written, skipped, unwritten)
