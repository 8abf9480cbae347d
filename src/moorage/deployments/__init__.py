"""Template deployments: the ARM template language (:mod:`moorage.deployments.templates`) and,
built on it, the deployment engine and deployment operations.

Like the other subsystems, this package imports nothing of ``identity``, ``registry``,
``instances`` or ``arm``: what it needs from them (the resource providers that deploy each
resource) reaches it through small Protocols wired in :mod:`moorage.app`.
"""
