"""The state of a demonstration in a page address: ``?scene=1234&x=40&y=60&models=dgmn-full,fcn-nonlocal``.

Opening such a link restores the view (the generated scene, the selected models, the clicked pixel); the
app's "Copy link" gives it. Pixels are (y, x) here; the address carries x and y by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from ..data.mixed_scene import MAX_SEED


@dataclass
class ViewState:
    scene: int | None = None  # seed of a generated scene (None: nothing to restore)
    y: float | None = None
    x: float | None = None
    models: list[str] = field(default_factory=list)

    def to_query(self) -> str:
        """The address's query string (without '?'); empty when there is no generated scene."""
        if self.scene is None:
            return ""
        q = {"scene": self.scene}
        if self.x is not None and self.y is not None:
            q.update(x=int(self.x), y=int(self.y))
        if self.models:
            q["models"] = ",".join(self.models)
        return urlencode(q, safe=",")


def parse_view_state(params) -> tuple[ViewState, list[str]]:
    """From a mapping of query parameters → (the state, problems found). Bad values are dropped with a note
    (a link typed by hand should still open what it can)."""
    state, problems = ViewState(), []
    get = params.get if hasattr(params, "get") else dict(params).get
    scene = get("scene")
    if scene not in (None, ""):
        try:
            seed = int(scene)
            if not 0 <= seed <= MAX_SEED:
                raise ValueError
            state.scene = seed
        except ValueError:
            problems.append(f"scene={scene!r} is not a seed (a whole number from 0 to {MAX_SEED})")
    try:
        x, y = get("x"), get("y")
        if x not in (None, "") and y not in (None, ""):
            state.x, state.y = float(x), float(y)
    except ValueError:
        problems.append(f"x={get('x')!r}, y={get('y')!r} is not a pixel")
    models = get("models")
    if models:
        state.models = [m for m in str(models).split(",") if m]
    return state, problems
