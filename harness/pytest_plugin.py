"""kmodlab's pytest plugin (registered through the ``pytest11`` entry point).

Fixtures and options arrive with the pytest issue; this module must import cheaply because
pytest loads it in every session of a venv where kmodlab is installed.
"""
