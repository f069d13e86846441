"""InfluxQL of the dashboards: one builder, the template variables' filters, the names of the
storage schema (devices.vocabulary).

Rules (checked by dashboards.lint): every panel query has `$timeFilter`; every bucket of a
day or more is cut at the site's local midnight (`tz('Europe/Paris')`, InfluxDB groups in UTC
otherwise); panels over more than a few hours read the hourly rollups (`power_rollup`) and the
analysis results (`usage`, `job`, `session`, `machine_state`, `balance`), never the 1 Hz
`meter` samples, which only panels with a range of their own of at most 6 hours read.
InfluxQL is answered by InfluxDB 1.x, 2.x (v1 API with a DBRP mapping) and 3.x.
"""

from __future__ import annotations

from collections.abc import Sequence

from devices import vocabulary as v

# template variables (multi-valued: Grafana substitutes `(a|b)`, regex-escaped)
SITE = '"site" =~ /^$site$/'
MACHINE = '"machine" =~ /^$machine$/'
MEMBER = '"member" =~ /^$member$/'
TIME = "$timeFilter"
INTERVAL = "$__interval"


def quote(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def select(fields: Sequence[str], measurement: str, where: Sequence[str] = (SITE,), *,
           every: str | None = None, by: Sequence[str] = (), tz: str | None = None,
           fill: str | None = None) -> str:
    """SELECT fields FROM measurement WHERE where AND $timeFilter [GROUP BY time(every), by]
    [fill(fill)] [tz('zone')].

    fields: select expressions as written (`sum("energy_kwh") AS "kWh"`); every: a bucket
    (`1d`, `$__interval`); by: tag keys; tz: the zone days are cut in (needed for every
    bucket of a day or more)."""
    text = f"SELECT {', '.join(fields)} FROM {quote(measurement)} WHERE " + " AND ".join([*where, TIME])
    groups = ([f"time({every})"] if every else []) + [quote(tag) for tag in by]
    if groups:
        text += " GROUP BY " + ", ".join(groups)
    if fill and every:
        text += f" fill({fill})"
    if tz:
        text += f" tz({string(tz)})"
    return text


def tag_values(measurement: str | None, key: str, where: str | None = None) -> str:
    """A variable's query: the values of tag `key` (of one measurement, or of all)."""
    text = "SHOW TAG VALUES" + (f" FROM {quote(measurement)}" if measurement else "") + f" WITH KEY = {quote(key)}"
    return text + (f" WHERE {where}" if where else "")


# ---- what several dashboards read -------------------------------------------------------------

def daily_sum(field: str, measurement: str, tz: str, where: Sequence[str] = (SITE, MACHINE),
              by: Sequence[str] = (v.TAG_MACHINE,), alias: str | None = None) -> str:
    """A stored figure per site-local day (usage and balance hold one point per day)."""
    return select([f"sum({quote(field)}) AS {quote(alias or field)}"], measurement, where,
                  every="1d", by=by, tz=tz, fill="none")


def total(field: str, measurement: str, where: Sequence[str] = (SITE, MACHINE),
          by: Sequence[str] = (v.TAG_MACHINE,), alias: str | None = None) -> str:
    """A stored figure summed over the range, per tag (machine, member)."""
    return select([f"sum({quote(field)}) AS {quote(alias or field)}"], measurement, where, by=by)


def rollup_power(by: Sequence[str] = (v.TAG_MACHINE,), where: Sequence[str] = (SITE, MACHINE)) -> str:
    """Hourly mean and peak power from the rollups (cheap at any range)."""
    return select(['mean("power_mean_w") AS "mean"', 'max("power_max_w") AS "peak"'], v.ROLLUP, where,
                  every=f"{INTERVAL}", by=by, fill="none")


def raw_power(fields: Sequence[str] = ("power_w",), where: Sequence[str] = (SITE, MACHINE),
              by: Sequence[str] = (v.TAG_MACHINE,)) -> str:
    """Power (or phase values) of the 1 Hz samples: only for panels of at most 6 hours."""
    return select([f"mean({quote(f)}) AS {quote(f)}" for f in fields], v.METER, where,
                  every=INTERVAL, by=by, fill="null")


def states(where: Sequence[str] = (SITE, MACHINE)) -> str:
    """Machine state intervals as analysed (the state is a tag, selected beside a field)."""
    return select(['"state"', '"duration_s"'], v.MACHINE_STATE, where, by=(v.TAG_MACHINE,))


def collector(fields: Sequence[str], aggregate: str = "max") -> str:
    """The collector's self-metrics per edge box (site), per Grafana interval."""
    return select([f"{aggregate}({quote(f)}) AS {quote(f)}" for f in fields], v.COLLECTOR, (SITE,),
                  every=INTERVAL, by=(v.TAG_SITE,), fill="none")
