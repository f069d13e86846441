"""What the dashboards need to know of a site: its name, time zone, currency, emission factor
and opening hours (from the site file), so that nothing of a site is written in a dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from devices.site import Site


@dataclass(frozen=True)
class SiteContext:
    """name: the `site` tag; timezone: IANA zone days are cut in; currency: ISO 4217 code;
    factor: the emission factor as a sentence (value, source, vintage, zone, basis)."""

    name: str
    timezone: str = "Europe/Paris"
    currency: str = "EUR"
    factor: str = ""

    @property
    def currency_unit(self) -> str:
        """Grafana's unit id of the currency (`currencyEUR`)."""
        return f"currency{self.currency}"

    @classmethod
    def from_site(cls, site: Site) -> "SiteContext":
        return cls(site.site.name, site.site.timezone, site.site.currency, factor_sentence(site))


def factor_sentence(site: Site) -> str:
    """The site's location-based emission factor (its latest vintage) in words."""
    from analytics.carbon import choose_emission_factor

    try:
        f = choose_emission_factor(site)
    except ValueError as exc:  # a site outside the default table's zone with no factor of its own
        return f"no location-based emission factor: {exc}"
    zone = f", zone {f.zone}" if f.zone else ""
    return (f"{f.kg_co2e_per_kwh:g} kg CO2e/kWh ({f.basis}-based), {f.source}, vintage {f.vintage}{zone}")
