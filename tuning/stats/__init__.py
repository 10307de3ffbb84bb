"""Pure statistics of paired seeds: intervals, tests, Holm, power. Imports neither Ray nor torch."""
