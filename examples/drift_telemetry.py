"""Detect input drift and spool telemetry locally (no broker needed).

    python examples/drift_telemetry.py

Builds a reference profile from bright random images, then feeds images that get darker;
prints the drift state changes and what went to the spool (the file `ember fleet report` reads).
"""

import numpy as np

from sdk.events import EventBus
from sdk.telemetry import Telemetry, build_reference_profile, read_messages


def images(n: int, level: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(level, 40, (120, 160, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


profile = build_reference_profile(images(256, 150, 0), "image")
bus = EventBus()
bus.subscribe(lambda e: print(f"{e.kind}: {e.data['feature']} {e.data['previous']} -> {e.data['state']} "
                              f"(PSI {e.data['psi']:.2f})") if e.kind == "drift.state" else None)
tel = Telemetry.from_config(None, kind="image", profile=profile, bus=bus, spool="example.spool",
                            window_block=64, window_blocks=4)
tel.start()
for level in (150, 150, 110, 70):  # the light fades
    for img in images(256, level, seed=level):
        tel.observe(img)
tel.publish_telemetry(fps=30.0)
tel.close()
kinds = [m["kind"] for m in read_messages("example.spool")]
print(f"spooled: {len(kinds)} messages ({', '.join(sorted(set(kinds)))}) in example.spool")
