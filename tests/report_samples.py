"""Synthetic monthly reports for the renderers' tests: realistic figures, consistent sums.

``sample_report()`` is one workshop (six machines, one of them a shared service, eight members,
October 2026 in Europe/Paris, a main-meter balance, sessions and jobs); ``sample_network_report()``
adds a small second workshop and, on request, a third one whose month was not analysed.
Figures are made by a seeded generator, then summed the way reports.build sums them (a machine is
the sum of its days, a site the sum of its machines, uncertainties added), so the renderers can be
checked against sums they do not compute themselves.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

from reports.model import (
    STATES,
    BalanceRow,
    Change,
    DayRow,
    FactorRow,
    Figures,
    JobRow,
    MachineRow,
    Manifest,
    MemberRow,
    Method,
    Period,
    Report,
    SessionRow,
    SiteFile,
    SiteReport,
    Totals,
)

HOSTILE_MEMBER = "<script>alert(1)</script>"
"""A member's name that must come out as text everywhere."""
HOSTILE_MACHINE = "a\"b'c&d"
"""A machine's label with every character HTML attributes care about."""

FACTOR_KG_PER_KWH = 0.052
"""Location-based factor of the samples [kg/kWh] (order of the French mix)."""
MARKET_FACTOR_KG_PER_KWH = 0.021
PRICE_PER_KWH = 0.2016
"""Flat price of the samples [EUR/kWh]."""

_OCTOBER = Period(
    start="2026-09-30T22:00:00Z",
    end="2026-10-31T23:00:00Z",
    start_s=datetime(2026, 9, 30, 22, tzinfo=timezone.utc).timestamp(),
    end_s=datetime(2026, 10, 31, 23, tzinfo=timezone.utc).timestamp(),
    timezone="Europe/Paris",
    month="2026-10",
)
_SEPTEMBER = Period(
    start="2026-08-31T22:00:00Z",
    end="2026-09-30T22:00:00Z",
    start_s=datetime(2026, 8, 31, 22, tzinfo=timezone.utc).timestamp(),
    end_s=datetime(2026, 9, 30, 22, tzinfo=timezone.utc).timestamp(),
    timezone="Europe/Paris",
    month="2026-09",
)
_PERIOD_H = (_OCTOBER.end_s - _OCTOBER.start_s) / 3600.0  # 745 h: the clocks go back on the 25th

# key, label, service, typical power when processing [W], standby [W], thresholds source
_MAIN_MACHINES = [
    ("cnc-router", "Défonceuse CN 3 axes", False, 5200.0, 180.0, "controller"),
    ("laser", "Découpe laser CO₂ 100 W", False, 2100.0, 60.0, "calibrated"),
    ("lathe", "Tour conventionnel", False, 3000.0, 0.0, "configured"),
    ("kiln", "Four céramique 1300 °C", False, 14000.0, 15.0, "configured"),
    ("printer-3d", "Imprimante 3D Prusa XL", False, 350.0, 9.0, "calibrated"),
    ("compressor", "Compresseur d'air", True, 5500.0, 35.0, "calibrated"),
]
_MAIN_MEMBERS = [
    ("m-0001", "Camille Durand"),
    ("m-0002", "Léa Martin"),
    ("m-0003", "Hugo Bernard"),
    ("m-0004", "Chloé Petit"),
    ("m-0005", "Atelier Bois & Cie"),
    ("m-0006", "Nathan Moreau"),
    ("m-0007", "Inès Lefèvre"),
    ("m-0008", "Jules Garnier"),
]
_SMALL_MACHINES = [
    ("laser", "Laser Trotec", False, 1800.0, 40.0, "calibrated"),
    ("plotter", "Plotter de découpe", False, 120.0, 4.0, "configured"),
]
_SMALL_MEMBERS = [("s-01", "Marc Roux"), ("s-02", "Zoé Blanc"), ("s-03", "Paul Fontaine")]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _figures(kwh: float, relative_u: float, *, market: bool, missing: float) -> dict:
    """Figures of an energy [kWh] with a relative expanded uncertainty [1]."""
    u = kwh * relative_u
    counter = min(0.02, 1.0 - missing)
    return dict(
        energy_kwh=kwh,
        energy_uncertainty_kwh=u,
        co2e_kg=kwh * FACTOR_KG_PER_KWH,
        co2e_uncertainty_kg=u * FACTOR_KG_PER_KWH,
        co2e_market_kg=kwh * MARKET_FACTOR_KG_PER_KWH if market else None,
        co2e_market_uncertainty_kg=u * MARKET_FACTOR_KG_PER_KWH if market else None,
        cost=kwh * PRICE_PER_KWH,
        cost_uncertainty=u * PRICE_PER_KWH,
        coverage_power=1.0 - counter - missing,
        coverage_counter=counter,
        coverage_missing=missing,
    )


def _sum_figures(rows: list[Figures], *, market: bool) -> dict:
    """Sums of energy, CO2e, cost and their uncertainties; coverage weighted by energy."""
    kwh = sum(r.energy_kwh for r in rows)
    weight = kwh or 1.0

    def total(name: str) -> float | None:
        values = [getattr(r, name) for r in rows]
        return None if any(v is None for v in values) else sum(values)

    out = dict(
        energy_kwh=kwh,
        energy_uncertainty_kwh=sum(r.energy_uncertainty_kwh for r in rows),
        co2e_kg=total("co2e_kg"),
        co2e_uncertainty_kg=total("co2e_uncertainty_kg"),
        co2e_market_kg=total("co2e_market_kg") if market else None,
        co2e_market_uncertainty_kg=total("co2e_market_uncertainty_kg") if market else None,
        cost=total("cost"),
        cost_uncertainty=total("cost_uncertainty"),
        coverage_power=sum(r.coverage_power * r.energy_kwh for r in rows) / weight,
        coverage_counter=sum(r.coverage_counter * r.energy_kwh for r in rows) / weight,
    )
    out["coverage_missing"] = max(0.0, 1.0 - out["coverage_power"] - out["coverage_counter"])
    return out


def _site(
    name: str,
    machines: list[tuple],
    members: list[tuple[str, str]],
    *,
    seed: int,
    sessions_per_day: int,
    market: bool,
    balance: bool,
) -> SiteReport:
    """One analysed workshop over October 2026."""
    rng = random.Random(seed)
    local = timezone(timedelta(hours=2))
    first = date(2026, 10, 1)
    days_in_month = 31
    sessions: list[SessionRow] = []
    jobs: list[JobRow] = []
    day_rows: list[DayRow] = []
    per_machine_days: dict[str, list[DayRow]] = {m[0]: [] for m in machines}
    per_machine_processing: dict[str, float] = {m[0]: 0.0 for m in machines}
    per_machine_jobs: dict[str, list[JobRow]] = {m[0]: [] for m in machines}
    per_machine_sessions: dict[str, list[SessionRow]] = {m[0]: [] for m in machines}
    bookable = [m for m in machines if not m[2]]
    service = [m for m in machines if m[2]]

    for offset in range(days_in_month):
        day = first + timedelta(days=offset)
        open_day = day.weekday() < 5 or (day.weekday() == 5 and offset % 2 == 0)
        day_kwh: dict[str, float] = {m[0]: 0.0 for m in machines}
        day_processing: dict[str, float] = {m[0]: 0.0 for m in machines}
        if open_day:
            for _ in range(rng.randint(sessions_per_day - 1, sessions_per_day + 1)):
                key, _label, _svc, power_w, _sb, _src = rng.choice(bookable)
                member = rng.choice(members)[0]
                start = datetime(day.year, day.month, day.day, rng.randint(8, 15), tzinfo=local)
                held_h = rng.choice([1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
                end = start + timedelta(hours=held_h)
                session_jobs: list[JobRow] = []
                cursor = start + timedelta(minutes=rng.randint(5, 20))
                for _j in range(rng.randint(0, 3)):
                    duration_h = round(rng.uniform(0.15, held_h / 3.0), 3)
                    job_end = cursor + timedelta(hours=duration_h)
                    if job_end > end:
                        break
                    kwh = power_w / 1000.0 * duration_h * rng.uniform(0.55, 0.9)
                    job = JobRow(
                        machine=key,
                        member=member,
                        start=_iso(cursor.astimezone(timezone.utc)),
                        end=_iso(job_end.astimezone(timezone.utc)),
                        duration_h=duration_h,
                        program=rng.choice(["O1001 plateau.nc", "boite_8mm.svg", "bol-émaillé", None]),
                        outcome=rng.choice(["completed", "completed", "completed", "aborted"]),
                        **_figures(kwh, 0.018, market=market, missing=0.0),
                    )
                    session_jobs.append(job)
                    cursor = job_end + timedelta(minutes=rng.randint(5, 25))
                processing_h = sum(j.duration_h for j in session_jobs)
                idle_kwh = power_w / 1000.0 * 0.08 * (held_h - processing_h)
                kwh = sum(j.energy_kwh for j in session_jobs) + idle_kwh
                session = SessionRow(
                    machine=key,
                    member=member,
                    start=_iso(start.astimezone(timezone.utc)),
                    end=_iso(end.astimezone(timezone.utc)),
                    held_h=held_h,
                    processing_h=processing_h,
                    jobs=len(session_jobs),
                    **_figures(kwh, 0.02, market=market, missing=0.0),
                )
                sessions.append(session)
                jobs.extend(session_jobs)
                per_machine_jobs[key].extend(session_jobs)
                per_machine_sessions[key].append(session)
                day_kwh[key] += kwh
                day_processing[key] += processing_h
        for key, _label, is_service, power_w, standby_w, _src in machines:
            closed_h = 24.0 - (10.0 if open_day else 0.0)
            standby_kwh = standby_w / 1000.0 * closed_h
            if is_service:
                running_h = rng.uniform(2.0, 4.5) if open_day else rng.uniform(0.1, 0.4)
                day_kwh[key] += power_w / 1000.0 * running_h
                day_processing[key] += running_h
            day_kwh[key] += standby_kwh
            missing = 0.0 if offset != 17 or key != "laser" else 0.125
            row = DayRow(
                date=day.isoformat(),
                machine=key,
                energy_kwh=day_kwh[key],
                energy_uncertainty_kwh=day_kwh[key] * 0.02 + 0.01,
                processing_h=day_processing[key],
                standby_outside_opening_kwh=standby_kwh,
                coverage_missing=missing,
            )
            day_rows.append(row)
            per_machine_days[key].append(row)
            per_machine_processing[key] += day_processing[key]

    machine_rows: list[MachineRow] = []
    for index, (key, label, is_service, _power_w, standby_w, source) in enumerate(machines):
        days = per_machine_days[key]
        kwh = sum(d.energy_kwh for d in days)
        processing_h = per_machine_processing[key]
        missing = max(d.coverage_missing for d in days) / days_in_month
        figures = _figures(kwh, 0.0, market=market, missing=missing)
        u = sum(d.energy_uncertainty_kwh for d in days)
        figures.update(
            energy_uncertainty_kwh=u,
            co2e_uncertainty_kg=u * FACTOR_KG_PER_KWH,
            cost_uncertainty=u * PRICE_PER_KWH,
        )
        if market:
            figures["co2e_market_uncertainty_kg"] = u * MARKET_FACTOR_KG_PER_KWH
        jobs_kwh = sum(j.energy_kwh for j in per_machine_jobs[key])
        sessions_kwh = sum(s.energy_kwh for s in per_machine_sessions[key])
        standby_kwh = sum(d.standby_outside_opening_kwh or 0.0 for d in days)
        closed_h = sum(24.0 if d.processing_h == 0.0 and not is_service else 14.0 for d in days)
        held = sum(s.held_h for s in per_machine_sessions[key])
        opening_h = 230.0
        fault_h = 1.5 if key == "cnc-router" else 0.0
        setup_h = 6.0 if key == "cnc-router" else 0.0
        idle_h = max(0.0, held - processing_h - setup_h - fault_h)
        standby_h = closed_h if standby_w > 0 else 0.0
        state_h = {
            "processing": processing_h,
            "idle": idle_h,
            "standby": standby_h,
            "setup": setup_h,
            "fault": fault_h,
        }
        state_h["off"] = max(0.0, _PERIOD_H - sum(state_h.values()))
        state_h = {state: state_h[state] for state in STATES}
        scale = 365.25 / days_in_month
        machine_rows.append(
            MachineRow(
                machine=key,
                label=label,
                is_service=is_service,
                processing_h=processing_h,
                state_h=state_h,
                availability=None if is_service else processing_h / opening_h,
                utilisation_efficiency=None if is_service or held == 0 else processing_h / held,
                kwh_per_processing_h=kwh / processing_h if processing_h > 0 else None,
                jobs=len(per_machine_jobs[key]),
                jobs_kwh=jobs_kwh,
                sessions_other_kwh=sessions_kwh - jobs_kwh,
                unattributed_kwh=kwh - sessions_kwh,
                standby_outside_opening_kwh=standby_kwh if standby_w > 0 else None,
                standby_outside_opening_h=standby_h if standby_w > 0 else None,
                standby_saving_per_year_kwh=standby_kwh * scale if standby_w > 0 else None,
                standby_saving_per_year_co2e_kg=(
                    standby_kwh * scale * FACTOR_KG_PER_KWH if standby_w > 0 else None
                ),
                standby_saving_per_year_cost=(
                    standby_kwh * scale * PRICE_PER_KWH if standby_w > 0 else None
                ),
                thresholds_w=None if source == "controller" else [standby_w * 0.5 + 1.0, 40.0 + index * 10, 250.0],
                thresholds_source=source,
                accuracy="class 1 (IEC 62053-21)" if index % 2 == 0 else "class B (EN 50470-3)",
                **figures,
            )
        )

    member_rows: list[MemberRow] = []
    for key, full_name in members:
        own = [s for s in sessions if s.member == key]
        if not own:
            continue
        member_rows.append(
            MemberRow(
                member=key,
                name=full_name,
                held_h=sum(s.held_h for s in own),
                processing_h=sum(s.processing_h for s in own),
                sessions=len(own),
                jobs=sum(s.jobs for s in own),
                **_sum_figures(own, market=market),
            )
        )

    totals = Totals(
        processing_h=sum(m.processing_h for m in machine_rows),
        jobs=len(jobs),
        sessions=len(sessions),
        members=len(member_rows),
        **_sum_figures(machine_rows, market=market),
    )
    previous = Totals(
        energy_kwh=totals.energy_kwh * 0.94,
        energy_uncertainty_kwh=totals.energy_uncertainty_kwh * 0.95,
        co2e_kg=(totals.co2e_kg or 0.0) * 0.94,
        cost=(totals.cost or 0.0) * 0.94,
        processing_h=totals.processing_h * 1.08,
        jobs=len(jobs) - 4,
        sessions=len(sessions) - 2,
        members=len(member_rows),
    )
    change = Change(energy=1 / 0.94 - 1, co2e=1 / 0.94 - 1, cost=1 / 0.94 - 1, processing=None)

    balance_rows: list[BalanceRow] = []
    if balance:
        metered_total = main_total = 0.0
        u_metered = u_main = 0.0
        for offset in range(days_in_month):
            day = (first + timedelta(days=offset)).isoformat()
            metered = sum(d.energy_kwh for d in day_rows if d.date == day)
            metered_u = sum(d.energy_uncertainty_kwh for d in day_rows if d.date == day)
            main = metered * 1.21 + 6.0
            main_u = main * 0.01
            balance_rows.append(
                BalanceRow(
                    period=day,
                    main_kwh=main,
                    main_uncertainty_kwh=main_u,
                    metered_kwh=metered,
                    metered_uncertainty_kwh=metered_u,
                    not_metered_kwh=main - metered,
                    not_metered_uncertainty_kwh=main_u + metered_u,
                    not_metered_share=(main - metered) / main,
                )
            )
            metered_total += metered
            main_total += main
            u_metered += metered_u
            u_main += main_u
        balance_rows.append(
            BalanceRow(
                period="period",
                main_kwh=main_total,
                main_uncertainty_kwh=u_main,
                metered_kwh=metered_total,
                metered_uncertainty_kwh=u_metered,
                not_metered_kwh=main_total - metered_total,
                not_metered_uncertainty_kwh=u_main + u_metered,
                not_metered_share=(main_total - metered_total) / main_total,
            )
        )

    factors = [
        FactorRow(
            name="ademe-mix-fr-2023",
            vintage="2023",
            basis="location",
            value_kg_per_kwh=FACTOR_KG_PER_KWH,
            zone="FR",
            source="ADEME Base Empreinte, électricité, mix moyen, consommation",
            evidence="https://base-empreinte.ademe.fr/ (id 15591)",
        )
    ]
    if market:
        factors.append(
            FactorRow(
                name="supplier-2025",
                vintage="2025",
                basis="market",
                value_kg_per_kwh=MARKET_FACTOR_KG_PER_KWH,
                zone="FR",
                source="Fournisseur, étiquette électricité 2025",
                evidence="contrat n° 2025-118",
            )
        )
    return SiteReport(
        site=name,
        timezone="Europe/Paris",
        currency="EUR",
        analysed=True,
        totals=totals,
        previous=previous,
        change=change,
        machines=machine_rows,
        members=member_rows,
        sessions=sessions,
        jobs=jobs,
        days=day_rows,
        balance=balance_rows,
        method=Method(
            emission_factors=factors,
            tariff=f"flat {PRICE_PER_KWH} EUR/kWh",
            currency="EUR",
            hourly_factors=None,
        ),
    )


def _manifest(sites: list[str]) -> Manifest:
    return Manifest(
        wattelier_version="0.1.0",
        site_files=[
            SiteFile(site=s, file=f"{s}.toml", sha256=f"{index:x}" * 64) for index, s in enumerate(sites, 10)
        ],
        store="journal:/var/lib/wattelier/journal.sqlite",
        window_start=_OCTOBER.start,
        window_end=_OCTOBER.end,
        results_sha256="5e1f" * 16,
        queried_at="2026-11-02T05:59:58Z",
        generated_at="2026-11-02T06:00:00Z",
    )


def _rename(site: SiteReport, *, member: str, machine: str) -> None:
    """Give one member's name and one machine's label hostile text."""
    site.members[0].name = member
    site.machines[1].label = machine


def sample_site(*, hostile: bool = False) -> SiteReport:
    """The main workshop of the samples, "fablab-pentes": six machines, eight members."""
    site = _site(
        "fablab-pentes",
        _MAIN_MACHINES,
        _MAIN_MEMBERS,
        seed=16,
        sessions_per_day=5,
        market=True,
        balance=True,
    )
    if hostile:
        _rename(site, member=HOSTILE_MEMBER, machine=HOSTILE_MACHINE)
    return site


def sample_report(language: str = "fr", *, hostile: bool = False) -> Report:
    """A one-site report of October 2026."""
    site = sample_site(hostile=hostile)
    return Report(
        language=language,
        period=_OCTOBER,
        previous_period=_SEPTEMBER,
        sites=[site],
        network=None,
        manifest=_manifest([site.site]),
    )


def sample_network_report(language: str = "fr", *, unanalysed: bool = True) -> Report:
    """Two analysed workshops side by side, and a third not analysed when asked."""
    main = sample_site()
    small = _site(
        "atelier-croix-rousse",
        _SMALL_MACHINES,
        _SMALL_MEMBERS,
        seed=7,
        sessions_per_day=1,
        market=False,
        balance=False,
    )
    sites = [main, small]
    if unanalysed:
        sites.append(
            SiteReport(
                site="manufacture-vaise",
                timezone="Europe/Paris",
                currency="EUR",
                analysed=False,
                missing_dates=[f"2026-10-{day:02d}" for day in range(20, 32)],
            )
        )
    analysed = [s.totals for s in sites if s.analysed and s.totals is not None]
    network = Totals(
        processing_h=sum(t.processing_h for t in analysed),
        jobs=sum(t.jobs for t in analysed),
        sessions=sum(t.sessions for t in analysed),
        members=sum(t.members for t in analysed),
        **_sum_figures(analysed, market=False),
    )
    return Report(
        language=language,
        period=_OCTOBER,
        previous_period=_SEPTEMBER,
        sites=sites,
        network=network,
        manifest=_manifest([s.site for s in sites]),
    )
