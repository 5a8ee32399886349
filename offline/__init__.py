"""Offline mode: the whole backend on one machine, driven by the same Pulumi program."""
