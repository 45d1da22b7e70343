"""Alerts with an identity: matchers, rules, the routing tree, silences and incidents.

Pure: no I/O. Each configuration model sits next to the logic it configures; `settings.py` only
references them. Regexes, globs, durations and time windows are compiled once, at config load.
"""
