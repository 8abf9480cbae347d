"""moorage: Azure Container Instances + Container Registry, self-hosted, on runc."""

__version__ = "0.1.0"
