"""The shared kernel: settings, database pool keys, HTTP errors and endpoint registry, OpenAPI, jobs.

It knows no domain package; every package may import it.
"""
