"""Tiny scores and signals for tests and smoke runs (seconds to build, nothing committed).

``write_demo_scores(root)`` writes five short works in ABC notation laid out like
music21's corpus (``composer/piece.abc``, ``composer/work/movementN.abc``), plus
one malformed score when ``broken=True``; ``BuildConfig(score_root=root)``
builds a corpus from them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

_HEADER = "X:1\nT:{title}\nM:4/4\nL:1/4\nQ:1/4=144\nK:{key}\n"

DEMO_SCORES: dict[str, str] = {
    "bach/chorale1.abc": _HEADER.format(title="Chorale one", key="G") + (
        "V:1\nG A B c | d2 B2 | c B A G | G4 |\n"
        "V:2\nD F G A | B2 G2 | A G F D | D4 |\n"
        "V:3\nB, D D E | G2 D2 | E D D B, | B,4 |\n"
        "V:4\nG, D, G, A, | G,2 G,2 | A, B, D D, | G,4 |\n"),
    "bach/chorale2.abc": _HEADER.format(title="Chorale two", key="F") + (
        "V:1\nF G A B | c2 A2 | B A G F | F4 |\n"
        "V:2\nC E F F | G2 F2 | F F E C | C4 |\n"
        "V:3\nA, C C D | E2 C2 | D C C A, | A,4 |\n"
        "V:4\nF, C, F, B,, | C,2 F,2 | B,, C, C, F,, | F,,4 |\n"),
    "mozart/k1/movement1.abc": _HEADER.format(title="Allegro", key="C") + (
        "V:1\nc/2e/2g/2e/2 c/2e/2g/2e/2 | d/2f/2a/2f/2 d2 | e/2g/2c'/2g/2 e2 | c4 |\n"
        "V:2\nC, G, C, G, | D, A, D,2 | E, G, C,2 | C,4 |\n"),
    "mozart/k1/movement2.abc": _HEADER.format(title="Andante", key="F") + (
        "V:1\nA2 c2 | B2 G2 | A3 F | F4 |\n"
        "V:2\nF,2 A,2 | G,2 C2 | C3 A, | F,4 |\n"),
    "haydn/minuet.abc": _HEADER.format(title="Minuet", key="D") + (
        "V:1\nd f a f | g e c e | d A F A | D4 |\n"
        "V:2\nD, F, A, F, | E, G, A, G, | F, D, A,, C, | D,4 |\n"),
    "handel/air.abc": _HEADER.format(title="Air", key="Bb") + (
        "V:1\nB2 d2 | c2 A2 | B3 F | B4 |\n"
        "V:2\nB,,2 F,2 | A,2 F,2 | G,3 F, | B,,4 |\n"),
}
BROKEN_SCORE = ("bach/broken.abc", "this is not a score { ] 7\n")


def write_demo_scores(root: str | Path, broken: bool = True) -> Path:
    root = Path(root)
    items = dict(DEMO_SCORES)
    if broken:
        items[BROKEN_SCORE[0]] = BROKEN_SCORE[1]
    for rel, text in items.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def click_track(n_samples: int, clicks: list[int] | np.ndarray, noise_level: float = 1e-3,
                seed: int = 0) -> np.ndarray:
    """Quiet noise with single-sample clicks at ``clicks``: ``(n_samples,)`` float32.

    Each click's broadband energy lands in the mel frame centred nearest to it,
    which is how the alignment tests find where a crop's frames sit.
    """
    rng = np.random.default_rng(seed)
    audio = rng.normal(0.0, noise_level, n_samples).astype(np.float32)
    for i, c in enumerate(clicks):
        audio[int(c)] = 0.8 if i % 2 == 0 else -0.8
    return audio
