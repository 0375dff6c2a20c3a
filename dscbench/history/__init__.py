"""History: every run in a database (store.py), series keyed by the hardware and stack that
measured them (fingerprint.py). ``dscbench history`` is its command (commands/history.py)."""
