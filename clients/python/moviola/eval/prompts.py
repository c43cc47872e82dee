"""The bundled prompt set of ``moviola eval models``: written for Moviola (Apache-2.0, like the rest).

Twelve prompts, three each for subjects, motion, camera moves and styles, so that a model's
strengths and failures show by kind; each has a stable id (results are keyed by it).
"""

from __future__ import annotations

PROMPTS: dict[str, tuple[str, str]] = {
    "fox-snow": ("subject", "a red fox trotting through fresh snow in a pine forest"),
    "old-fisherman": ("subject", "close-up of an old fisherman mending a net on a wooden pier"),
    "glass-teapot": ("subject", "a glass teapot on a table, tea leaves unfurling in hot water"),
    "waves-rocks": ("motion", "ocean waves crashing against black rocks, spray in the wind"),
    "dancer-spin": ("motion", "a dancer in a white dress spinning on an empty stage"),
    "city-traffic": ("motion", "cars and buses streaming through a rainy city intersection at night"),
    "drone-canyon": ("camera", "aerial drone shot flying forward through a red sandstone canyon"),
    "orbit-statue": ("camera", "the camera orbits slowly around a marble statue in a museum hall"),
    "dolly-market": ("camera", "a dolly shot pushing in through a crowded night market"),
    "watercolour-village": ("style", "a watercolour painting of a mountain village, clouds drifting"),
    "anime-train": ("style", "anime style, a train crossing a bridge over a sunlit river"),
    "noir-detective": (
        "style",
        "black and white film noir, a detective lighting a cigarette under a streetlamp",
    ),
}
