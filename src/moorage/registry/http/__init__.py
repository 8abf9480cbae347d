"""The registry's HTTP edge: OCI distribution ``/v2``, ACR's token endpoints ``/oauth2`` and its
metadata API ``/acr/v1``. Errors use the OCI envelope ``{"errors": [{code, message, detail}]}``."""
