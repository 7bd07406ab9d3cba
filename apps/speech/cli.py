"""The speech app's command-line contract (``sdk.apps``): run, eval, ``ember speech enroll``, demo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError


def _keywords(text: str | None) -> list[str] | None:
    return [w.strip() for w in text.split(",") if w.strip()] if text else None


def _stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keywords", metavar="LIST", help="comma list of keywords to report, e.g. yes,no,stop "
                   "(default: every keyword of the model)")
    p.add_argument("--threshold", type=float, help="smoothed posterior needed for a detection, 0..1 "
                   "(default: the model's, chosen on held-out speakers)")
    p.add_argument("--hop-ms", type=float, help="step between 1 s windows in ms, a multiple of 20 (default: the model's)")
    p.add_argument("--smooth", type=int, help="windows averaged before the threshold (default: the model's)")
    p.add_argument("--gate", type=float, help="energy gate: skip windows whose loudest frame's mean feature is "
                   "below this (0 = off; default: the model's)")


def spotter_from(args: argparse.Namespace, config: Any = None) -> Any:
    from apps.speech.spotter import KeywordSpotter

    return KeywordSpotter.from_folder(args.model, tier=args.tier, backend=args.backend,
                                      keywords=_keywords(getattr(args, "keywords", None)), config=config,
                                      threshold=getattr(args, "threshold", None), hop_ms=getattr(args, "hop_ms", None),
                                      smooth=getattr(args, "smooth", None), gate=getattr(args, "gate", None))


class SpeechApp:
    """``APP`` of ``apps.speech`` (see ``sdk.apps``)."""

    name = "speech"

    def add_run_arguments(self, p: argparse.ArgumentParser) -> None:
        _stream_options(p)
        p.add_argument("--budget-ms", type=float, help="processing budget per hop before degrading "
                       "(default: the hop length, i.e. real time)")
        p.add_argument("--no-telemetry", action="store_true", help="do not collect drift telemetry")

    def run(self, args: argparse.Namespace, config: Any) -> int:
        from apps.speech.live import emitter, run_stream
        from sdk.util.jsonutil import dumps

        spotter = spotter_from(args, config)
        emit, handle = emitter(args.jsonl)
        tel = None if args.no_telemetry else self._telemetry(spotter, config)
        try:
            summary = run_stream(spotter, args.source, emit, tel, args.budget_ms)
        finally:
            if handle is not None:
                handle.close()
            if tel is not None:
                tel.close()
            spotter.close()
        if args.jsonl != "-":
            print(dumps({"summary": summary}))
        return 0

    @staticmethod
    def _telemetry(spotter: Any, config: Any) -> Any:
        from sdk.telemetry import ReferenceProfile, Telemetry

        ref = spotter.manager.store.manifest.reference_profile
        profile = ReferenceProfile.from_dict(ref) if ref else None
        return Telemetry.from_config(config, kind="audio", profile=profile, labels=spotter.labels,
                                     sample_rate=16000).start()

    def add_eval_arguments(self, p: argparse.ArgumentParser) -> None:
        _stream_options(p)
        p.add_argument("--stream", action="store_true", help="also build streams from the folder (keywords "
                       "over its _silence_ clips; its _unknown_ + _silence_ clips for --hours) and report the "
                       "miss rate and false accepts per hour")
        p.add_argument("--hours", type=float, default=1.0, help="length of the negative stream (default 1)")
        p.add_argument("--seed", type=int, default=0, help="seed for building the streams")

    def evaluate(self, args: argparse.Namespace) -> dict[str, Any]:
        from apps.speech.report import evaluate_folder

        if args.hours <= 0:
            raise ConfigError(f"--hours must be > 0, got {args.hours}")
        args.tier = args.tier or "fp32"
        spotter = spotter_from(args)
        try:
            return evaluate_folder(spotter, Path(args.data), stream=args.stream, hours=args.hours,
                                   seed=args.seed, plot=args.plot)
        finally:
            spotter.close()

    def register_commands(self, sub: Any) -> None:
        if "speech" in sub.choices:
            return
        sp = sub.add_parser("speech", help="speech app tools (enroll a custom keyword)",
                            description="Tools of the speech app.")
        ssub = sp.add_subparsers(dest="speech_command", metavar="COMMAND", required=True)
        en = ssub.add_parser("enroll", help="build a detector for a new word from 5-10 recordings",
                             description="Learn a custom keyword from a few recordings (an embedding of the "
                             "shipped network and a prototype), choose its threshold to keep false accepts low "
                             "on the shipped unknown-word/noise clips, and write a model folder that "
                             "'ember run speech --model DIR' accepts.")
        en.add_argument("--word", required=True, help="name of the new keyword")
        en.add_argument("--examples", required=True, metavar="DIR", help="folder of WAV/FLAC recordings of the word")
        en.add_argument("--out", metavar="DIR", help="model folder to write (default: ./<word>-model)")
        en.add_argument("--model", metavar="DIR", help="base model folder (default: the shipped model)")
        en.set_defaults(func=_enroll)

    def demo(self, out_dir: Path, config: Any, say: Any) -> list[str]:
        from apps.speech.report import demo

        return demo(out_dir, config, say)


def _enroll(args: argparse.Namespace, config: Any) -> int:
    from apps.speech.enroll import enroll
    from sdk.util.jsonutil import dumps

    out = Path(args.out) if args.out else Path(f"{args.word}-model")
    result = enroll(args.word, Path(args.examples), out, base=args.model)
    print(dumps(result, indent=2))
    return 0
