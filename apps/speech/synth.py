"""Synthetic words for training (espeak-ng and flite, Debian packages) in many voices, speeds and pitches:
'unknown' words (more and more varied non-keywords than the recorded ones) and the ten keywords
(extra augmentation for the keyword classes, which have only ~190 recorded clips each).

The unknown words are no keyword, no homophone of one (know, write) and not the enrolment word. All
synthetic clips are training data only (never in the select or val splits); the training script
mixes them with background noise and samples them at a fixed share of their class.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from apps.speech.data import KEYWORDS, Clip, read_audio

_WORDS = """
yet yeah yell less yellow guess chess dress mess bless press test west best nest vest
now new nose note snow slow low row toe nine night nice noon
cup us bus jump pup cut hut upper supper open
town dawn gown round sound drown brown crown found ground dog dot
lift lest lost loft laugh leaf lead light lake late lemon
bright night ride fight kite white might tight rice bite rye wide
own bond gone done one ten won son sun fun van in an and then
of soft often cough coffee cloth moth
top step shop stock spot stuck staff stuff start star stone store storm
goal goat code show so dough sew though grow glow crow gold ghost
bed bird cat house marvin sheila tree wow zero two three four five six seven eight
backward forward follow learn visual
apple banana water paper pencil window garden kitchen bottle button candle
music magic rabbit robot rocket river summer winter winner dinner butter
red blue green black pink purple orange silver
cold warm hot fast small big long short tall soon
map car bike boat train plane phone table chair door floor wall roof
morning evening Monday Friday ocean island mountain forest valley
hello thanks please sorry maybe never always later again
light bulb camera radio movie doctor teacher baby mother father sister brother
"""
WORDS = tuple(_WORDS.split())
ESPEAK = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5", "+croak",
            "+klatt", "+klatt2", "+klatt3")
FLITE = ("slt", "rms", "awb", "kal16")


def available() -> bool:
    return shutil.which("espeak-ng") is not None


def _command(word: str, rng: np.random.Generator, wav: Path) -> list[str]:
    """The espeak-ng or flite command line for ``word`` in a random voice, speed and pitch."""
    if shutil.which("flite") and rng.random() < 0.2:
        stretch = rng.uniform(0.8, 1.3)
        cmd = ["flite", "-voice", str(rng.choice(FLITE)), "--setf", f"duration_stretch={stretch:.2f}",
               "--setf", f"int_f0_target_mean={rng.uniform(80, 220):.0f}", "-t", word, "-o", str(wav)]
    else:
        voice = str(rng.choice(ESPEAK)) + str(rng.choice(VARIANTS))
        cmd = ["espeak-ng", "-v", voice, "-s", str(int(rng.integers(110, 230))), "-p", str(int(rng.integers(15, 85))),
               "-w", str(wav), word]
    return cmd


def make_clips(folder: Path, n: int, seed: int, words: tuple[str, ...], label: str | None = None) -> list[Clip]:
    """``n`` synthetic clips of random ``words`` as 16 kHz WAV files in ``folder`` (made once, then reused),
    labelled ``label`` (None: each clip's own word)."""
    import soundfile as sf
    from tqdm import tqdm

    if not available():
        raise SystemExit("synthetic words need espeak-ng (apt-get install espeak-ng flite), or pass --synth 0")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in tqdm(range(n), desc=f"synthetic {label or 'keywords'}", unit="clip", mininterval=5):
            word = str(rng.choice(words)).lower()
            path = folder / f"{word}_synth{i}_nohash_0.wav"
            wav = Path(tmp) / "w.wav"
            cmd = _command(word, rng, wav)  # drawn even for a file made before: the same clips on a rerun
            if not path.exists():
                subprocess.run(cmd, check=True, capture_output=True, timeout=30)
                sf.write(str(path), read_audio(wav), 16000, subtype="PCM_16")
            clips.append(Clip(path, label or word, f"synth{i}", word))
    return clips


def make_unknowns(folder: Path, n: int, seed: int) -> list[Clip]:
    """``n`` synthetic unknown-word clips."""
    return make_clips(folder, n, seed, WORDS, "unknown")


def make_keywords(folder: Path, n: int, seed: int) -> list[Clip]:
    """``n`` synthetic keyword clips (random keywords, each labelled with its word)."""
    return make_clips(folder, n, seed, tuple(KEYWORDS))
