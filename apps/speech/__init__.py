"""Speech reference app: streaming keyword spotting (12 Speech Commands classes) on the integer KWS front end.

    ember run speech --source mic://default --keywords yes,no,stop
    ember eval speech --data DIR [--stream]
    ember speech enroll --word marco --examples clips/ --out marco-model

Python API: ``from apps.speech import KeywordSpotter`` (see ``apps/speech/README.md``).
Heavy modules are imported inside functions: every ``ember`` command builds this app's parsers.
"""

from __future__ import annotations

from typing import Any

from apps.speech.cli import SpeechApp

APP = SpeechApp()


def __getattr__(name: str) -> Any:
    if name in ("KeywordSpotter", "Detection", "StreamSettings"):
        from apps.speech import spotter

        return getattr(spotter, name)
    raise AttributeError(f"module 'apps.speech' has no attribute {name!r}")


__all__ = ["APP", "Detection", "KeywordSpotter", "StreamSettings"]
