"""Read a sound file as a microphone would deliver it: resampled, in overlapping chunks.

    python examples/audio_chunks.py [FILE.wav|.flac]

Without FILE it writes a 3 s 44.1 kHz tone sweep first. Prints each 1 s chunk (hop 0.5 s) at
16 kHz with its level.
"""

import sys

import numpy as np
import soundfile as sf

from sdk.sources import open_source

path = sys.argv[1] if len(sys.argv) > 1 else "example-sweep.wav"
if len(sys.argv) == 1:
    t = np.arange(3 * 44100) / 44100
    sf.write(path, 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t), 44100)

with open_source(f"file://{path}?rate=16000&chunk_ms=1000&hop_ms=500") as source:
    for item in source:
        rms = float(np.sqrt(np.mean(item.data ** 2)))
        print(f"chunk {item.seq}: {item.data.shape[0]} samples at {item.meta['rate']} Hz, "
              f"starts {item.meta['start_s']:.1f} s, RMS {20 * np.log10(rms + 1e-12):.1f} dBFS")
print(source.stats.as_dict())
