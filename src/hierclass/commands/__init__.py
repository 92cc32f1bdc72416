"""Subcommands of the ``hierclass`` CLI; each module has ``add_parser`` and ``run``."""
