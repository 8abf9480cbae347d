"""The container registry: OCI distribution data plane, ACR auth, RBAC, firewall and bypass."""
