"""Command implementations too long for cli.py; each exposes an ``execute`` the CLI calls."""
