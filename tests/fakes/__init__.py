"""Test fakes, used only at boundaries where no real thing can run on the build machines.

`k8s_api` is an in-process HTTP FAKE of a few Kubernetes API endpoints (not a Kubernetes server).
"""
