"""The ARM management plane: routing, authentication, authorization, LRO, error envelopes, and
one resource provider per resource type (:mod:`moorage.arm.resources`)."""
