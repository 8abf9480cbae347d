"""Unit tests of the ARM template language (moorage.deployments.templates)."""
