"""Hourly rollups of meter power: what the journal computes per meter and hour, and what the
analysis reads from InfluxDB instead of every sample where that gives the same result.

Why: reading raw 1 Hz samples back from InfluxDB costs about 1.3 us per value on the server
(JSON answer of InfluxDB 1.6.7), so a week of 20 machines costs 15 s or more before any
analysis, while most of those minutes hold one machine state at a steady power. A rollup keeps,
per meter and hour, enough to rebuild each such minute exactly for the analysis (first and last
sample, power range, trapezoid energy, longest step between samples) and the histogram of
log-power that threshold calibration needs; the analysis reads raw samples only in the minutes
where something happens (analytics.rollup_plan).

A rollup is one point of the ``power_rollup`` measurement at the start of the hour (UTC), tags
of the meter series it sums up, and these fields:

- ``power_mean_w``, ``power_min_w``, ``power_max_w``, ``samples``: plain numbers for dashboards
  (mean of the trapezoid between the hour's first and last sample [W], extremes [W], count);
- ``hour`` and ``minutes``: block statistics (STAT_COLUMNS) of the whole hour and of each
  minute that has samples, packed (``pack``);
- ``histogram``: the count of samples per log-power bin (``power_bins``), packed;
- ``detail``: the samples (minute_s, time_s, power_w, energy_import_kwh) of the minutes where power
  changes most (max over min above DETAIL_RATIO, or a missing value), as many as fit, packed;
  their minutes are marked in ``minutes`` (column ``detail``);
- ``format``: ROLLUP_FORMAT.

Packed arrays are little-endian float64, column by column, zlib-compressed, in base64 (exact,
and one value for InfluxDB to read instead of hundreds); a string field of InfluxDB 1.x holds
up to 64 KiB: a packed hour of minutes is at most 61 x 16 x 8 bytes before compression.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence

import numpy as np

from storage.inflate import inflate

ROLLUP_FORMAT = 1.0
# Minutes whose power changes by more than this factor (a machine changing state: state levels
# differ by factors) keep their samples in the rollup's `detail` field, as many as fit in one
# InfluxDB 1.x string field (64 KiB of base64: DETAIL_MAX_SAMPLES rows of 4 float64).
DETAIL_RATIO = 1.5
DETAIL_MAX_SAMPLES = 1500
ROLLUP_S = 3600.0
MINUTE_S = 60.0
BINS_PER_DECADE = 50  # 0.02-decade bins (analytics.states.calibrate_thresholds)

# Block statistics: one row per block, in this column order. Times are Unix seconds computed
# as float64(time_ns) / 1e9, exactly as the readers compute them. A block without counter
# readings has NaN counter columns.
STAT_COLUMNS = (
    "block_s",            # start of the block (hour or minute) [s]
    "first_s", "last_s",  # first and last sample time [s]
    "first_w", "last_w",  # power at those samples [W] (NaN where the sample had none)
    "min_w", "max_w",     # power range of the block's samples [W]
    "energy_ws",          # trapezoid from the first to the last sample, every step bridged [W s]
    "max_step_s",         # longest step between consecutive samples of the block [s]
    "samples",            # samples in the block
    "nan_samples",        # samples without a power value
    "counter_first_kwh", "counter_last_kwh",  # energy counter at the first and last sample
    "counter_irregular",  # 1 when a sample lacks the counter or the counter goes backwards
    "counter_min_step_kwh",  # smallest forward step of the counter inside the block (NaN: none)
    "detail",             # 1 when the block's samples are in the rollup's `detail` field
)
COLUMN = {name: i for i, name in enumerate(STAT_COLUMNS)}


def seconds(time_ns) -> np.ndarray:
    """Unix seconds [s] of int64 nanosecond times, as every reader computes them."""
    return np.asarray(time_ns, dtype=np.int64).astype(np.float64) / 1e9


def power_bins(power_w) -> np.ndarray:
    """Global log-power bin of each sample (int32): bin k holds [10**(k/50), 10**((k+1)/50)) W.

    Only finite positive samples have a bin; pass those. log10 is taken in float32, which is
    plenty for 0.02-decade bins and the same everywhere this is called."""
    f32 = np.finfo(np.float32)
    p = np.clip(np.asarray(power_w, dtype=np.float64), f32.tiny, f32.max).astype(np.float32)
    return np.floor(np.log10(p) * np.float32(BINS_PER_DECADE)).astype(np.int32)


def histogram(power_w) -> tuple[int, np.ndarray, np.ndarray]:
    """(samples <= 0 W, bins, counts) of the finite samples; bins ascending (int64)."""
    p = np.asarray(power_w, dtype=np.float64)
    p = p[np.isfinite(p)]
    positive = p > 0
    bins, counts = np.unique(power_bins(p[positive]), return_counts=True)
    return int(len(p) - np.count_nonzero(positive)), bins.astype(np.int64), counts.astype(np.int64)


def block_stats(time_ns, power_w, counter_kwh, block_ns: int) -> np.ndarray:
    """Statistics (STAT_COLUMNS) of each block of block_ns that has samples.

    Parameters
    ----------
    time_ns : array of int64 [ns]
        Sample times, non-decreasing.
    power_w : array [W]
        Power per sample, NaN where none.
    counter_kwh : array [kWh]
        Energy counter per sample, NaN where none.
    block_ns : int [ns]
        Block length (blocks start at multiples of it, UTC).

    Returns
    -------
    array, shape (blocks, len(STAT_COLUMNS))
    """
    t_ns = np.asarray(time_ns, dtype=np.int64)
    p = np.asarray(power_w, dtype=np.float64)
    c = np.asarray(counter_kwh, dtype=np.float64)
    out = np.empty((0, len(STAT_COLUMNS)))
    if not len(t_ns):
        return out
    block = t_ns - t_ns % block_ns
    first = np.concatenate([[0], np.flatnonzero(block[1:] != block[:-1]) + 1])
    last = np.concatenate([first[1:] - 1, [len(t_ns) - 1]])
    t = seconds(t_ns)
    n = len(first)
    out = np.full((n, len(STAT_COLUMNS)), np.nan)
    out[:, COLUMN["block_s"]] = seconds(block[first])
    out[:, COLUMN["first_s"]] = t[first]
    out[:, COLUMN["last_s"]] = t[last]
    out[:, COLUMN["first_w"]] = p[first]
    out[:, COLUMN["last_w"]] = p[last]
    nan = np.isnan(p)
    out[:, COLUMN["nan_samples"]] = np.add.reduceat(nan.astype(np.float64), first)
    filled_low = np.where(nan, np.inf, p)
    filled_high = np.where(nan, -np.inf, p)
    out[:, COLUMN["min_w"]] = np.minimum.reduceat(filled_low, first)
    out[:, COLUMN["max_w"]] = np.maximum.reduceat(filled_high, first)
    out[:, COLUMN["samples"]] = last - first + 1
    # steps between consecutive samples of the same block (the last sample of a block opens none)
    step_s = np.diff(t)
    segment_ws = (p[1:] + p[:-1]) / 2.0 * step_s
    inside = block[1:] == block[:-1]
    step_s = np.where(inside, step_s, 0.0)
    segment_ws = np.where(inside, segment_ws, 0.0)
    if len(step_s):
        starts = np.minimum(first, len(step_s) - 1)
        energy = np.add.reduceat(segment_ws, starts)
        longest = np.maximum.reduceat(step_s, starts)
        single = last == first  # a one-sample block has no step of its own
        out[:, COLUMN["energy_ws"]] = np.where(single, 0.0, energy)
        out[:, COLUMN["max_step_s"]] = np.where(single, 0.0, longest)
    else:
        out[:, COLUMN["energy_ws"]] = 0.0
        out[:, COLUMN["max_step_s"]] = 0.0
    out[:, COLUMN["counter_first_kwh"]] = c[first]
    out[:, COLUMN["counter_last_kwh"]] = c[last]
    missing = np.isnan(c)
    backwards = np.concatenate([[False], (np.diff(c) < 0) & inside])
    irregular = np.add.reduceat((missing | backwards).astype(np.float64), first)
    has_any = np.add.reduceat((~missing).astype(np.float64), first) > 0
    # a block with no counter at all is regular (no counter); one with some readings missing is not
    out[:, COLUMN["counter_irregular"]] = np.where(has_any & (irregular > 0), 1.0, 0.0)
    if len(c) > 1:
        forward = np.diff(c)
        forward = np.where(inside & (forward > 0), forward, np.inf)
        smallest = np.minimum.reduceat(forward, np.minimum(first, len(forward) - 1))
        out[:, COLUMN["counter_min_step_kwh"]] = np.where((last > first) & np.isfinite(smallest), smallest, np.nan)
    return out


def pack(values) -> str:
    """A 2-D float64 array (rows, columns) as text: little-endian float64 column by column,
    zlib, base64 (columns of statistics compress about 5 times)."""
    columns = np.ascontiguousarray(np.asarray(values, dtype="<f8").T)
    return base64.b64encode(zlib.compress(columns.tobytes(), 6)).decode("ascii")


def unpack(text: str, columns: int) -> np.ndarray:
    """Inverse of pack: an array of `columns` columns."""
    return unpack_many([text], columns)


def _inflated(texts: Sequence[str]) -> list[bytes]:
    """The bytes of packed texts (empty for an empty text)."""
    return [inflate(binascii.a2b_base64(t)) if t else b"" for t in texts]


def unpack_many(texts: Sequence[str], columns: int) -> np.ndarray:
    """The rows of several packed arrays of `columns` columns, one after the other: what
    concatenating unpack() of each gives, with less work per array (a week of a machine's
    rollups is some 170 hours)."""
    raw = _inflated(texts)
    if not raw:
        return np.empty((0, columns))
    if all(len(r) == 8 * columns for r in raw):  # one row each: column order is row order
        return np.frombuffer(b"".join(raw), dtype="<f8").reshape(-1, columns).copy()
    return np.concatenate([np.frombuffer(r, dtype="<f8").reshape(columns, -1).T for r in raw])


def rollup_fields(time_ns, power_w, counter_kwh) -> dict[str, float | str] | None:
    """Fields of the rollup point of one meter series and hour (samples of that hour only,
    time order), or None when the hour has no power value at all."""
    p = np.asarray(power_w, dtype=np.float64)
    finite = p[np.isfinite(p)]
    if not len(finite):
        return None
    hour = block_stats(time_ns, p, counter_kwh, int(ROLLUP_S * 1e9))
    minutes = block_stats(time_ns, p, counter_kwh, int(MINUTE_S * 1e9))
    below, bins, counts = histogram(p)
    detail = _detail(time_ns, p, counter_kwh, minutes)
    row = hour[0]
    span_s = row[COLUMN["last_s"]] - row[COLUMN["first_s"]]
    mean_w = row[COLUMN["energy_ws"]] / span_s if span_s > 0 else float(finite[0])
    if not np.isfinite(mean_w):  # NaN samples inside: the plain mean of the values
        mean_w = float(np.mean(finite))
    return {
        "power_mean_w": float(mean_w),
        "power_min_w": float(finite.min()),
        "power_max_w": float(finite.max()),
        "samples": float(len(p)),
        "hour": pack(hour),
        "minutes": pack(minutes),
        "histogram": pack(np.concatenate([[below], np.column_stack([bins, counts]).ravel()])[:, None]),
        "detail": pack(detail),
        "format": ROLLUP_FORMAT,
    }


def unpack_histogram(text: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(samples <= 0 W, bins, counts) from a rollup's ``histogram`` field."""
    return unpack_histograms([text])


def unpack_histograms(texts: Sequence[str]) -> tuple[int, np.ndarray, np.ndarray]:
    """(samples <= 0 W, bins, counts) of several rollups' ``histogram`` fields together: the
    samples <= 0 W added up, the (bin, count) pairs of every one in order (a bin may repeat:
    analytics.states.PowerHistogram.summed adds them up)."""
    raw = _inflated(texts)
    flat = np.frombuffer(b"".join(raw), dtype="<f8")
    sizes = np.array([len(r) for r in raw], dtype=np.int64) // 8
    heads = (np.cumsum(sizes) - sizes)[sizes > 0]
    is_head = np.zeros(len(flat), dtype=bool)
    is_head[heads] = True
    pairs = flat[~is_head].reshape(-1, 2)
    return int(flat[is_head].sum()), pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def _detail(time_ns, power_w: np.ndarray, counter_kwh, minutes: np.ndarray) -> np.ndarray:
    """Rows (minute_s, time_s, power_w, energy_import_kwh) of the samples of the minutes that change
    most, largest change first while they fit (DETAIL_MAX_SAMPLES); marks them in `minutes`.
    Samples without power and counter are left out (InfluxDB has no row for them)."""
    low, high = minutes[:, COLUMN["min_w"]], minutes[:, COLUMN["max_w"]]
    # powers under 1 W count as 1 W (the lowest off level calibration uses): noise around an
    # off machine's fraction of a watt is no state change
    ratio = np.maximum(high, 1.0) / np.maximum(low, 1.0)
    ratio = np.where(minutes[:, COLUMN["nan_samples"]] > 0, np.inf, ratio)
    wanted = np.flatnonzero((ratio > DETAIL_RATIO) & (minutes[:, COLUMN["samples"]] >= 2))
    wanted = wanted[np.argsort(-ratio[wanted], kind="stable")]
    fits = np.cumsum(minutes[wanted, COLUMN["samples"]]) <= DETAIL_MAX_SAMPLES
    chosen = np.sort(wanted[fits])
    minutes[:, COLUMN["detail"]] = 0.0
    minutes[chosen, COLUMN["detail"]] = 1.0
    t_ns = np.asarray(time_ns, dtype=np.int64)
    t_s = seconds(t_ns)
    minute_s = seconds(t_ns - t_ns % int(MINUTE_S * 1e9))
    c = np.asarray(counter_kwh, dtype=np.float64)
    keep = np.isin(minute_s, minutes[chosen, COLUMN["block_s"]]) & (np.isfinite(power_w) | np.isfinite(c))
    return np.column_stack([minute_s[keep], t_s[keep], power_w[keep], c[keep]])
