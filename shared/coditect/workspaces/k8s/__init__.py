"""The Kubernetes provisioner backend: `objects` builds manifests (pure), `backend` sends them.

Only modules in this package import the ``kubernetes`` client, and only `backend` does so at
import time; import `coditect.workspaces.k8s.backend` explicitly where it is needed.
"""
