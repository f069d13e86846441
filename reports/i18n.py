"""Labels and number, date and month formatting of the reports, in French and English.

Every heading, label and unit the renderers print comes from ``LABELS`` (one pair per key,
French then English, so a missing translation cannot exist); numbers, money, percentages, dates
and months are formatted by Babel (CLDR) for the report's language.

What the text looks like: French groups thousands with a narrow no-break space (U+202F, as CLDR
and Babel give it) and writes a decimal comma ("1 234,5 kWh"); percentages and the currency sign
are set apart by a no-break space (U+00A0: "12,3 %", "1 234,50 €"); between a number and its unit
the renderers put a no-break space too, so that "kWh" never starts a line. English: "1,234.5 kWh",
"12.3%", "€1,234.50". Text extracted from a PDF (pdftotext) may hold either kind of space: compare
after ``plain_spaces``.

A figure that is None ("cannot be known") prints as "—", never as 0.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_symbol

from reports.model import Period

LANGUAGES = ("fr", "en")
NONE = "—"
"""What a figure that cannot be known prints as."""
NBSP = "\u00a0"
NNBSP = "\u202f"

LABELS: dict[str, tuple[str, str]] = {
    # title and header
    "title": ("Rapport d'impact mensuel", "Monthly impact report"),
    "title_period": ("Rapport d'impact", "Impact report"),
    "period": ("Période", "Period"),
    "previous_period": ("Période précédente", "Previous period"),
    "generated": ("Généré le", "Generated on"),
    "by": ("par wattelier", "by wattelier"),
    "site": ("Atelier", "Site"),
    "sites": ("Ateliers", "Sites"),
    "contents": ("Sommaire", "Contents"),
    # network
    "network": ("Réseau d'ateliers", "Network of sites"),
    "network_total": ("Total du réseau", "Network total"),
    "network_note": (
        "Le total du réseau est la somme des ateliers analysés ; un atelier non analysé n'y compte pas.",
        "The network total is the sum of the analysed sites; a site not analysed is not in it.",
    ),
    # totals
    "totals": ("Totaux", "Totals"),
    "energy": ("Énergie", "Energy"),
    "co2e_location": ("CO₂e (méthode location-based)", "CO₂e (location-based)"),
    "co2e_market": ("CO₂e (méthode market-based)", "CO₂e (market-based)"),
    "co2e": ("CO₂e", "CO₂e"),
    "cost": ("Coût", "Cost"),
    "processing_h": ("Heures de production", "Processing hours"),
    "jobs": ("Travaux", "Jobs"),
    "sessions": ("Sessions", "Sessions"),
    "members": ("Membres", "Members"),
    "change": ("Évolution", "Change"),
    "change_note": (
        "Évolution relative par rapport à la période précédente de même durée ; « — » : "
        "non calculable (période précédente nulle ou non analysée).",
        "Relative change against the previous period of the same length; \"—\": cannot be "
        "computed (previous value zero or previous period not analysed).",
    ),
    "coverage_missing": ("Données manquantes", "Missing data"),
    "value": ("Valeur", "Value"),
    "uncertainty_note": (
        "« ± » : incertitude élargie (k = 2, environ 95 %).",
        "\"±\": expanded uncertainty (k = 2, about 95%).",
    ),
    # machines
    "machines": ("Machines", "Machines"),
    "machine": ("Machine", "Machine"),
    "service": ("service partagé", "shared service"),
    "machines_energy": ("Énergie par machine", "Energy per machine"),
    "machines_use": ("Utilisation des machines (ISO 22400-2)", "Machine use (ISO 22400-2)"),
    "availability": ("Disponibilité", "Availability"),
    "utilisation_efficiency": ("Efficacité d'utilisation", "Utilisation efficiency"),
    "kwh_per_processing_h": ("kWh par heure de production", "kWh per processing hour"),
    "kpi_note": (
        "Disponibilité = temps de production / heures d'ouverture ; efficacité d'utilisation = "
        "temps de production / temps réservé ou occupé (ISO 22400-2, APT/PBT et APT/AUBT).",
        "Availability = processing time / opening hours; utilisation efficiency = processing "
        "time / booked or held time (ISO 22400-2, APT/PBT and APT/AUBT).",
    ),
    "coverage": ("Couverture", "Coverage"),
    "coverage_power": ("mesurée", "measured"),
    "coverage_counter": ("compteur seul", "counter only"),
    "coverage_missing_short": ("manquante", "missing"),
    "standby": ("Veille hors heures d'ouverture", "Standby outside opening hours"),
    "standby_h": ("Heures de veille", "Standby hours"),
    "standby_kwh": ("Énergie de veille", "Standby energy"),
    "saving_per_year": ("Économie possible par an", "Possible saving per year"),
    "standby_note": (
        "Ce qu'éteindre la machine hors des heures d'ouverture économiserait en un an, au rythme "
        "de cette période (× 365,25 jours / jours de la période).",
        "What switching the machine off outside opening hours would save in a year at this "
        "period's rate (× 365.25 days / the period's days).",
    ),
    "total": ("Total", "Total"),
    # members
    "member": ("Membre", "Member"),
    "members_table": ("Consommation par membre", "Use per member"),
    "held_h": ("Heures réservées", "Held hours"),
    "statements": ("Relevés des membres", "Member statements"),
    "statement": ("Relevé", "Statement"),
    "statement_of": ("Relevé de", "Statement of"),
    "start": ("Début", "Start"),
    "end": ("Fin", "End"),
    "duration_h": ("Durée", "Duration"),
    "program": ("Programme", "Program"),
    "outcome": ("Issue", "Outcome"),
    "window_cut": ("coupé par la période", "cut by the period"),
    "no_sessions": ("Aucune session sur la période.", "No session in the period."),
    "no_jobs": ("Aucun travail sur la période.", "No job in the period."),
    "no_members": ("Aucun membre sur la période.", "No member in the period."),
    # balance
    "balance": ("Bilan du site", "Site balance"),
    "main_meter": ("Compteur général", "Main meter"),
    "metered": ("Machines et services mesurés", "Metered machines and services"),
    "not_metered": (
        "Non mesuré (éclairage, chauffage, prises)",
        "Not metered (lighting, heating, sockets)",
    ),
    "share": ("Part", "Share"),
    # charts
    "charts": ("Graphiques", "Charts"),
    "chart_daily": ("Énergie par jour et par machine", "Energy per day and machine"),
    "chart_states": ("Part du temps par état", "Share of time per state"),
    "chart_members": ("Énergie par membre", "Energy per member"),
    "chart_standby": ("Veille hors heures d'ouverture par machine", "Standby outside opening hours per machine"),
    "axis_kwh": ("Énergie [kWh]", "Energy [kWh]"),
    "axis_share": ("Part du temps [%]", "Share of time [%]"),
    "axis_day": ("Jour", "Day"),
    # states (reports.model.STATES)
    "state_processing": ("production", "processing"),
    "state_idle": ("prête (à vide)", "idle"),
    "state_standby": ("veille", "standby"),
    "state_off": ("arrêt", "off"),
    "state_setup": ("réglage", "setup"),
    "state_fault": ("défaut", "fault"),
    # not analysed
    "not_analysed": ("Non analysé", "Not analysed"),
    "not_analysed_text": (
        "Ce site n'a pas de résultats pour tous les jours de la période : aucun chiffre n'est "
        "donné plutôt qu'un mois incomplet. Jours sans résultats :",
        "This site has no results for every day of the period: no figure is given rather than "
        "an incomplete month. Days without results:",
    ),
    "not_analysed_run": ("Pour l'analyser :", "To analyse it:"),
    # method
    "method": ("Méthode", "Method"),
    "emission_factors": ("Facteurs d'émission", "Emission factors"),
    "factor": ("Facteur", "Factor"),
    "vintage": ("Millésime", "Vintage"),
    "zone": ("Zone", "Zone"),
    "basis": ("Méthode", "Basis"),
    "basis_location": ("location-based", "location-based"),
    "basis_market": ("market-based", "market-based"),
    "source": ("Source", "Source"),
    "evidence": ("Justificatif", "Evidence"),
    "tariff": ("Tarif", "Tariff"),
    "no_tariff": ("aucun tarif : pas de coût", "no tariff: no cost"),
    "currency": ("Devise", "Currency"),
    "hourly_factors": ("Facteurs horaires", "Hourly factors"),
    "thresholds": ("Seuils d'état par machine", "State thresholds per machine"),
    "thresholds_w": ("Seuils veille / prête / production", "Thresholds standby / idle / processing"),
    "thresholds_source": ("Origine", "Found by"),
    "source_configured": ("configurés", "configured"),
    "source_calibrated": ("calibrés sur la distribution de puissance", "calibrated from the power distribution"),
    "source_controller": ("états donnés par la commande numérique", "states from the controller"),
    "accuracy": ("Précision du compteur", "Meter accuracy"),
    "uncertainty_model": ("Modèle d'incertitude", "Uncertainty model"),
    "uncertainty_text": (
        "Les incertitudes suivent le GUM (JCGM 100:2008). Chaque source est une limite "
        "rectangulaire (incertitude type = limite / √3) : la classe de précision du compteur, la "
        "résolution du compteur d'énergie aux bornes de l'intervalle, le placement dans les trous "
        "de puissance de l'énergie attestée par le compteur seul, et la part manquante bornée par "
        "la puissance nominale de la machine. Les sources sont combinées en somme quadratique puis "
        "élargies par k = 2 (environ 95 %). Une somme d'enregistrements (jours d'une machine, "
        "sessions d'un membre, machines d'un site) additionne leurs incertitudes : c'est une borne "
        "supérieure, quelle que soit leur corrélation.",
        "Uncertainties follow the GUM (JCGM 100:2008). Each source is a rectangular limit "
        "(standard uncertainty = limit / √3): the meter's accuracy class, the energy counter's "
        "resolution at the interval's ends, the placement in power holes of energy backed by the "
        "counter only, and the missing share bounded by the machine's rated power. Sources are "
        "combined as a root sum of squares, then expanded with k = 2 (about 95%). A sum of "
        "records (a machine's days, a member's sessions, a site's machines) adds their "
        "uncertainties: an upper bound, whatever their correlation.",
    ),
    "coverage_title": ("Couverture des données", "Data coverage"),
    "coverage_text": (
        "La couverture partage le temps derrière chaque chiffre : « mesurée » quand la puissance "
        "était relevée, « compteur seul » quand seul le compteur d'énergie atteste l'énergie d'un "
        "trou de puissance (elle y est placée là où elle a eu lieu), « manquante » quand aucune "
        "donnée n'existe (l'énergie y est bornée par la puissance nominale, dans l'incertitude). "
        "Les trois parts font 100 %.",
        "Coverage splits the time behind each figure: \"measured\" where power was read, "
        "\"counter only\" where only the energy counter backs the energy of a power hole (placed "
        "where it happened), \"missing\" where no data exists (its energy is bounded by the rated "
        "power, within the uncertainty). The three shares add up to 100%.",
    ),
    # manifest
    "manifest": ("Manifeste", "Manifest"),
    "version": ("Version de wattelier", "wattelier version"),
    "site_files": ("Fichiers de site", "Site files"),
    "file": ("Fichier", "File"),
    "window": ("Fenêtre", "Window"),
    "store": ("Stockage", "Store"),
    "queried_at": ("Interrogé le", "Queried at"),
    "results_sha256": ("Empreinte des résultats (SHA-256)", "Results hash (SHA-256)"),
    "generated_at": ("Généré le", "Generated at"),
    "colon": ("\u00a0:", ":"),
    # units
    "unit_kwh": ("kWh", "kWh"),
    "unit_kg": ("kg CO₂e", "kg CO₂e"),
    "unit_h": ("h", "h"),
    "unit_w": ("W", "W"),
    "unit_kg_per_kwh": ("kg CO₂e/kWh", "kg CO₂e/kWh"),
}


def label(language: str, key: str) -> str:
    """The label ``key`` in ``language`` ("fr" or "en")."""
    french, english = LABELS[key]
    return french if language == "fr" else english


def decimals(value: float) -> int:
    """Decimal places of an energy [kWh] or mass [kg]: 1 from 100 up, 2 from 1 up, 3 below 1
    (by magnitude): about three significant digits for small figures, tenths for big ones."""
    magnitude = abs(value)
    if magnitude >= 100.0:
        return 1
    if magnitude >= 1.0:
        return 2
    return 3


def plain_spaces(text: str) -> str:
    """``text`` with no-break and narrow no-break spaces made ordinary spaces (for comparing with
    text extracted from a PDF)."""
    return text.replace(NNBSP, " ").replace(NBSP, " ")


class Formatter:
    """Formats the figures of one report in its language; every method returns "—" for None."""

    def __init__(self, language: str, currency: str | None = None, timezone_name: str = "UTC") -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown report language {language!r} (known: {', '.join(LANGUAGES)})")
        self.language = language
        self.currency = currency
        self.zone = ZoneInfo(timezone_name)
        percent = "#,##0.0" + ("\u00a0%" if language == "fr" else "%")
        self._percent_pattern = percent

    def t(self, key: str) -> str:
        """The label ``key``."""
        return label(self.language, key)

    def number(self, value: float | None, places: int) -> str:
        """A number with ``places`` decimals and the language's separators."""
        if value is None:
            return NONE
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return format_decimal(value, format=pattern, locale=self.language)

    def quantity(self, value: float | None, unit_key: str | None = None) -> str:
        """An energy [kWh] or mass [kg] with ``decimals`` places and its unit."""
        if value is None:
            return NONE
        text = self.number(value, decimals(value))
        return text + (NBSP + self.t(unit_key) if unit_key else "")

    def with_uncertainty(self, value: float | None, u: float | None, unit_key: str | None = None) -> str:
        """"value ± U unit": U with as many decimals as the value (they line up)."""
        if value is None:
            return NONE
        places = decimals(value)
        text = self.number(value, places)
        if u is not None:
            text += NBSP + "±" + NBSP + self.number(u, places)
        return text + (NBSP + self.t(unit_key) if unit_key else "")

    def kwh(self, value: float | None, u: float | None = None) -> str:
        """Energy [kWh], with its uncertainty when given."""
        return self.with_uncertainty(value, u, "unit_kwh")

    def kg(self, value: float | None, u: float | None = None) -> str:
        """CO2e [kg], with its uncertainty when given."""
        return self.with_uncertainty(value, u, "unit_kg")

    def hours(self, value: float | None) -> str:
        """Hours [h] with one decimal."""
        if value is None:
            return NONE
        return self.number(value, 1) + NBSP + self.t("unit_h")

    def count(self, value: int | None) -> str:
        """A count, grouped."""
        if value is None:
            return NONE
        return format_decimal(value, format="#,##0", locale=self.language)

    def percent(self, share: float | None) -> str:
        """A share [1] as a percentage with one decimal."""
        if share is None:
            return NONE
        return format_percent(share, format=self._percent_pattern, locale=self.language)

    def change(self, relative: float | None) -> str:
        """A relative change [1] with its sign: "+6,4 %", "−3,0 %"."""
        if relative is None:
            return NONE
        text = self.percent(abs(relative))
        if relative > 0:
            return "+" + text
        if relative < 0:
            return "\u2212" + text
        return text

    def money(self, value: float | None, u: float | None = None) -> str:
        """An amount in the site's currency (2 decimals), with its uncertainty when given."""
        if value is None or self.currency is None:
            return NONE
        text = format_currency(value, self.currency, locale=self.language)
        if u is not None:
            text += NBSP + "±" + NBSP + format_currency(u, self.currency, locale=self.language)
        return text

    def currency_symbol(self) -> str:
        """The currency's symbol ("€"), or "—" without a currency."""
        if self.currency is None:
            return NONE
        return get_currency_symbol(self.currency, locale=self.language)

    def factor(self, value: float | None) -> str:
        """An emission factor [kg/kWh] with four decimals."""
        if value is None:
            return NONE
        return self.number(value, 4) + NBSP + self.t("unit_kg_per_kwh")

    def watts(self, values: list[float] | None) -> str:
        """Thresholds [W]: "5 / 40 / 250 W"."""
        if not values:
            return NONE
        return " / ".join(self.number(v, 0) for v in values) + NBSP + self.t("unit_w")

    def month(self, period: Period) -> str:
        """The period's name: "octobre 2026" for a month, else "1 oct. 2026 – 14 oct. 2026"."""
        if period.month:
            year, month = (int(part) for part in period.month.split("-"))
            return format_date(date(year, month, 1), "LLLL yyyy", locale=self.language)
        zone = ZoneInfo(period.timezone)
        start = datetime.fromtimestamp(period.start_s, zone).date()
        last = datetime.fromtimestamp(period.end_s - 1, zone).date()
        return f"{self.date(start.isoformat())} – {self.date(last.isoformat())}"

    def date(self, iso_date: str) -> str:
        """A site-local date "YYYY-MM-DD" in words: "1 oct. 2026", "Oct 1, 2026"."""
        return format_date(date.fromisoformat(iso_date), "medium", locale=self.language)

    def day(self, iso_date: str) -> str:
        """A short day for chart axes: "01/10" (fr), "10/01" (en)."""
        day = date.fromisoformat(iso_date)
        return format_date(day, "dd/MM" if self.language == "fr" else "MM/dd", locale=self.language)

    def local_time(self, iso_utc: str) -> str:
        """A UTC time "…Z" shown in the site's zone: "02/10/2026 14:30"."""
        moment = _parse_utc(iso_utc)
        if moment is None:
            return iso_utc or NONE
        return format_datetime(moment.astimezone(self.zone), "short", locale=self.language)

    def utc_time(self, iso_utc: str) -> str:
        """A UTC time as "2 nov. 2026, 06:00 UTC"; the text itself when it is not ISO 8601."""
        moment = _parse_utc(iso_utc)
        if moment is None:
            return iso_utc or NONE
        return format_datetime(moment, "medium", tzinfo=timezone.utc, locale=self.language) + " UTC"


def _parse_utc(text: str) -> datetime | None:
    """An ISO 8601 time (Z or offset; naive taken as UTC), None when it is not one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
