"""Watch the model manager switch precision tiers as a (scripted) battery drains.

    python examples/tier_switching.py

Makes fp32 and int8 tiers of a small conv net, then runs 60 simulated seconds of frames with a
battery draining from 40 % and a charger plugged in at 45 s. Prints every tier switch.
"""

import numpy as np

from sdk.events import EventBus
from sdk.models.builtin import tiny_convnet
from sdk.models.manager import ModelManager
from sdk.models.variants import make_model_folder
from sdk.testing import FakeClock, ScriptedDevice, drain, windows

rng = np.random.default_rng(0)
frames = [rng.random((1, 3, 64, 64), dtype=np.float32) for _ in range(16)]
make_model_folder("example-model", tiny_convnet("example-model/src.onnx"), "example", tiers=("fp32", "int8"),
                  calibration=frames)

clock, bus = FakeClock(), EventBus()
bus.subscribe(lambda e: print(f"t={clock():5.1f}s {e.kind}: {e.data.get('from')} -> {e.data.get('to')} "
                              f"({e.data.get('reason')})") if e.kind == "tier.switch" else None)
device = ScriptedDevice(clock, battery_percent=drain(40, 0.5), charging=windows(False, (45, 1e9, True)))
manager = ModelManager("example-model", device=device, clock=clock, bus=bus, min_dwell_s=2,
                       rules=["battery < 30 and not charging -> max_tier int8"])
for i in range(60 * 10):  # 10 frames per simulated second
    clock.advance(0.1)
    manager(frames[i % len(frames)])
print(f"served {manager.frames} frames; {manager.stats()['switches']} switches; now on {manager.tier}")
manager.close()
