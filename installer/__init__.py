"""What install.py runs: build r1relay's functions and manage them in an Open WebUI.

One module per job, each importing only the ones listed before it:
`errors` (the failures, one terminal line each), `bundle` (the functions r1relay
ships and the single-file builder), `valve_config` (`--config` and `--set`),
`openwebui` (the admin REST client), `plan` (install, uninstall, what to write),
`status` (what is installed and whether it works), `demo` (the local demo's servers).
Only `openwebui`, `status` and `demo` need `requests`, so `export` works without it.
"""
