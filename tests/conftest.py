"""Test configuration: property tests are derandomized so every run checks the same examples."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ppl", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ppl")
