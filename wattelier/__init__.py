"""wattelier: energy, time and CO2 per job and per member on shared workshop machines."""

__version__ = "0.1.0"
