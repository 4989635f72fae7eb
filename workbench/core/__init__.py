"""Records, the project store, formats and statistics. Never imports Qt or torch."""
