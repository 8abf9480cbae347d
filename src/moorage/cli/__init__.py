"""The ``moorage`` command line. Server commands run locally; every other command talks to a
running server only through :mod:`moorage.client`."""
