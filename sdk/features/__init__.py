"""Audio feature front ends that run identically in Python and in exported C (``sdk.features.kws``)."""

from sdk.features.kws import KwsFrontend, KwsTables

__all__ = ["KwsFrontend", "KwsTables"]
