"""Synthetic unknown words (espeak-ng / flite): real speech files, never a keyword or the enrolment word."""

from __future__ import annotations

import numpy as np

from apps.speech.data import KEYWORDS, list_clips, read_audio
from apps.speech.synth import WORDS, make_unknowns
from apps.speech.train import ENROLL_WORD


def test_word_list_has_no_keyword_homophone_or_enrolment_word():
    words = {w.lower() for w in WORDS}
    assert not words & {*KEYWORDS, "know", "write", "rite", ENROLL_WORD}
    assert len(words) > 150


def test_clips_are_spoken_words_in_a_label_folder(tmp_path, need):
    need("espeak-ng")
    clips = make_unknowns(tmp_path / "_unknown_", 4, seed=3)
    assert len(clips) == 4 and all(c.label == "unknown" and c.word in {w.lower() for w in WORDS} for c in clips)
    again = make_unknowns(tmp_path / "_unknown_", 4, seed=3)  # made once, then reused
    assert [c.path for c in again] == [c.path for c in clips]
    listed = list_clips(tmp_path)
    assert sorted(c.path for c in listed) == sorted(c.path for c in clips)
    assert len({c.speaker for c in listed}) == 4  # each clip its own speaker
    for c in clips:
        pcm = read_audio(c.path)
        assert 0.2 * 16000 < len(pcm) < 2.5 * 16000
        assert np.abs(pcm).max() > 3000  # speech, not silence
