"""The text summary of an analysis, the same in offline and stored mode (`wattelier analyze`
without --json): per machine and per member, energy [kWh], CO2e [kg] and cost, with coverage as
a percentage; the machines' total with its expanded uncertainty, the site's balance where the
site has a main meter, and the emission factors; at most 80 columns."""

from __future__ import annotations


def number(value: float | None, decimals: int) -> str:
    """A figure to `decimals` places, "-" when unknown, never "-0.000"."""
    if value is None:
        return "-"
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def summary_lines(doc: dict) -> list[str]:
    """Lines of the summary of an analysis document (AnalysisResult.to_json())."""
    currency = doc.get("currency") or ""
    lines = [f"{doc['start']} .. {doc['end']} ({doc['timezone']})",
             f"  {'machine':<16} {'kWh':>10} {'coverage':>8} {'processing':>10} {'jobs':>5} "
             f"{'kgCO2e':>9} {('cost ' + currency).strip():>9}"]
    for m in doc["machines"]:
        name = m["machine"] + (" *" if m.get("is_service") else "")
        lines.append(f"  {name:<16} {number(m['energy_kwh'], 3):>10} {m['coverage']:8.1%} "
                     f"{number(m['processing_s'] / 3600, 2) + ' h':>10} {m['jobs']:5d} "
                     f"{number(m['co2e_kg'], 3):>9} {number(m['cost'], 2):>9}")
    total = sum(m["energy_kwh"] for m in doc["machines"])
    total_u = sum(m.get("energy_uncertainty_kwh") or 0.0 for m in doc["machines"])
    lines.append(f"  total {number(total, 3)} kWh +/- {number(total_u, 3)} kWh (k = 2)")
    unattributed = sum(m["unattributed_energy_kwh"] for m in doc["machines"])
    lines.append(f"  unattributed (outside any session): {number(unattributed, 3)} kWh"
                 + ("; * shared service" if any(m.get("is_service") for m in doc["machines"]) else ""))
    if doc["members"]:
        lines.append(f"  {'member':<16} {'kWh':>10} {'sessions':>8} {'processing':>10} {'jobs':>5} "
                     f"{'kgCO2e':>9} {('cost ' + currency).strip():>9}")
    for m in doc["members"]:
        energy = m["energy_kwh"] + m.get("shared_services_kwh", 0.0)
        lines.append(f"  {m['member']:<16} {number(energy, 3):>10} {m['sessions']:8d} "
                     f"{number(m['processing_s'] / 3600, 2) + ' h':>10} {m['jobs']:5d} "
                     f"{number(m['co2e_kg'], 3):>9} {number(m['cost'], 2):>9}")
    window = next((b for b in doc.get("balance") or [] if b["period"] == "window"), None)
    if window is not None:
        share = window["not_metered_share"]
        lines.append(f"site balance: main meter {number(window['main_kwh'], 3)} kWh, metered "
                     f"{number(window['metered_kwh'], 3)} kWh, not metered "
                     f"{number(window['not_metered_kwh'], 3)} kWh"
                     + (f" ({share:.1%})" if share is not None else ""))
    for key in ("emission_factor", "emission_factor_market"):
        factor = doc.get(key)
        if factor is None:
            continue
        zone = f", {factor['zone']}" if factor.get("zone") else ""
        lines.append(f"emission factor {factor['kg_co2e_per_kwh']} kgCO2e/kWh ({factor['basis']}, "
                     f"{factor['vintage']}{zone}): {factor['source']}".rstrip())
    return lines
