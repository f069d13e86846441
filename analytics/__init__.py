"""Pure numpy analytics: states, jobs, energy, CO2 and cost per job, session and member."""
