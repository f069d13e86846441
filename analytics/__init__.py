"""Pure numpy analytics: states, jobs, energy, CO2 and cost per job, session and member."""

from analytics.energy import counter_energy_between, energy_between

__all__ = ["counter_energy_between", "energy_between"]
