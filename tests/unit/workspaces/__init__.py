"""Workspace provisioner tests: interface, manifests, Kubernetes backend (fake API), local backend."""
