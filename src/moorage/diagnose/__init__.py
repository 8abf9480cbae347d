"""``moorage diagnose`` and support bundles.

* :mod:`~moorage.diagnose.trace` — a recording transport router: every exchange of a diagnosed
  pull, on the same channel a container group's pull takes;
* :mod:`~moorage.diagnose.probes` — the seven ordered checks of one image from the puller's
  viewpoint, the failure named by the one classifier in :mod:`moorage.instances.access`;
* :mod:`~moorage.diagnose.service` — targets (a container group, a deployment's failed groups,
  an image checked as an identity) and the :class:`~moorage.diagnose.report.Report`;
* :mod:`~moorage.diagnose.redaction` and :mod:`~moorage.diagnose.bundle` — support bundles with
  every secret redacted (pure: the CLI uses them on documents it fetched over HTTP).

The registry's firewall and identity's role assignments reach this package only through the
protocols it owns (:class:`~moorage.diagnose.probes.FirewallPolicy`,
:class:`~moorage.diagnose.probes.RoleDirectory`), wired in :mod:`moorage.app`.
"""
