"""Workspaces: per-user IDE workloads started on demand.

`provisioner` defines the one interface (modelled on JupyterHub's ``Spawner``); `local` is the
embedded default (real processes on loopback); `k8s` is the production backend (Pods via the
``kubernetes`` client, imported only there); `program` is the default workspace program the local
backend runs. Import the submodule you need: importing this package imports nothing heavy.
"""
