"""Generate a CSS-style data set: scenes of coloured shapes, modification texts, 64x64 renders.

Facts kept from TIRG's CSS (see the package README): 8 colours, 3 shapes, 2 sizes on a 3x3
grid; the 2-D renderer's palette and shape geometry; three modification kinds (add, remove,
change an attribute); a test split with (colour, shape) compositions absent from training;
recall counted on scene labels.

Assumptions of this generator (not fixed by the original):
- grid centres at fractions 0.2, 0.5, 0.8 of the canvas (objects never overlap);
- each split is a set of *base* scenes, each modified `mods_per_scene` times, so every source
  has several one-step neighbours in the gallery and an image-only model cannot tell which
  one is meant (the paper's image-only R@1 is low for the same reason);
- one image per distinct scene (identical scenes render identically), so a label is a scene;
- every test base scene holds at least one test-only composition.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tirg.fileio import OutputKind, atomic_directory

COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (244, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 205, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SHAPES = ("rectangle", "circle", "triangle")
SIZES = ("small", "large")
HALF_SIZE_PX = {"small": 4.0, "large": 8.0}
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "center", "right")
GRID_FRACTIONS = (0.2, 0.5, 0.8)
IMAGE_SIZE = 64
DESCRIPTION_FILE = "css.json"
FORMAT = "tirg-css-generated"
CSS_DATA = OutputKind("generated CSS data set", DESCRIPTION_FILE, FORMAT, frozenset((DESCRIPTION_FILE, "images")))

# (row, column, colour, shape, size); a scene is a sorted tuple of these, one per grid cell at most.
SceneObject = tuple[int, int, str, str, str]
Scene = tuple[SceneObject, ...]


@dataclass(frozen=True)
class CSSGeneratorConfig:
    seed: int = 0
    n_train: int = 4000  # images, about; queries are n * mods_per_scene / (mods_per_scene + 1)
    n_test: int = 1000
    mods_per_scene: int = 4
    min_objects: int = 2
    max_objects: int = 4
    n_novel_compositions: int = 4  # (colour, shape) pairs that appear only in test


def position_name(row: int, column: int) -> str:
    return f"{ROWS[row]}-{COLUMNS[column]}"


def describe(obj: SceneObject) -> str:
    return f"{obj[4]} {obj[2]} {obj[3]}"


def scene_caption(scene: Scene) -> str:
    return ", ".join(f"{describe(obj)} at {position_name(obj[0], obj[1])}" for obj in scene)


def render(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 [size, size, 3]: white canvas, TIRG's 2-D shapes (square, diamond 'circle', apex-up triangle)."""
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    rows = np.arange(size)[:, None].astype(np.float64)
    cols = np.arange(size)[None, :].astype(np.float64)
    for row, column, color, shape, obj_size in scene:
        y, x = GRID_FRACTIONS[row] * size, GRID_FRACTIONS[column] * size
        s = HALF_SIZE_PX[obj_size] * size / IMAGE_SIZE
        if shape == "rectangle":
            in_rows = (rows >= np.trunc(y - s)) & (rows < np.trunc(y + s))
            mask = in_rows & (cols >= np.trunc(x - s)) & (cols < np.trunc(x + s))
        elif shape == "circle":
            in_rows = (rows >= np.trunc(y - s)) & (rows <= np.trunc(y + s))
            left = x + np.abs(rows - y) - s
            mask = in_rows & (cols >= np.trunc(left)) & (cols < np.trunc(2 * x - left))
        else:  # triangle, apex up
            in_rows = (rows >= np.trunc(y - s)) & (rows < np.trunc(y + s))
            left = x - (rows - y + s) / 2
            mask = in_rows & (cols >= np.trunc(left)) & (cols < np.trunc(2 * x - left))
        canvas[mask] = COLORS[color]
    return canvas


def choose_novel_compositions(rng: np.random.Generator, count: int) -> set[tuple[str, str]]:
    """Test-only (colour, shape) pairs; each colour and shape keeps a training composition."""
    pairs = [(color, shape) for color in COLORS for shape in SHAPES]
    while True:
        chosen = {pairs[i] for i in rng.choice(len(pairs), size=count, replace=False)}
        colors_left = {c for c, s in pairs if (c, s) not in chosen}
        shapes_left = {s for c, s in pairs if (c, s) not in chosen}
        if colors_left == set(COLORS) and shapes_left == set(SHAPES):
            return chosen


class _SceneSampler:
    def __init__(self, rng: np.random.Generator, config: CSSGeneratorConfig, novel: set[tuple[str, str]], test: bool):
        self.rng = rng
        self.config = config
        self.novel = novel
        self.test = test

    def allowed(self, color: str, shape: str) -> bool:
        return self.test or (color, shape) not in self.novel

    def random_object(self, row: int, column: int) -> SceneObject:
        while True:
            color = str(self.rng.choice(list(COLORS)))
            shape = str(self.rng.choice(SHAPES))
            if self.allowed(color, shape):
                return (row, column, color, shape, str(self.rng.choice(SIZES)))

    def base_scene(self) -> Scene:
        count = int(self.rng.integers(self.config.min_objects, self.config.max_objects + 1))
        cells = self.rng.choice(9, size=count, replace=False)
        objects = [self.random_object(int(c) // 3, int(c) % 3) for c in cells]
        if self.test:  # every test scene shows a composition never seen in training
            color, shape = sorted(self.novel)[int(self.rng.integers(len(self.novel)))]
            first = objects[0]
            objects[0] = (first[0], first[1], color, shape, first[4])
        return tuple(sorted(objects))

    def modify(self, scene: Scene) -> tuple[str, str, Scene] | None:
        """(kind, text, target scene) for one random modification, or None if it is not possible."""
        kind = str(self.rng.choice(["add", "remove", "change"]))
        occupied = {(obj[0], obj[1]) for obj in scene}
        if kind == "add":
            free = [(r, c) for r in range(3) for c in range(3) if (r, c) not in occupied]
            if not free:
                return None
            row, column = free[int(self.rng.integers(len(free)))]
            obj = self.random_object(row, column)
            return kind, f"add {describe(obj)} to {position_name(row, column)}", tuple(sorted((*scene, obj)))
        target_index = int(self.rng.integers(len(scene)))
        obj = scene[target_index]
        rest = scene[:target_index] + scene[target_index + 1 :]
        if kind == "remove":
            if len(scene) == 1 or sum(describe(o) == describe(obj) for o in scene) > 1:
                return None
            return kind, f"remove {describe(obj)}", rest
        attribute = str(self.rng.choice(["color", "shape", "size"]))
        row, column, color, shape, size = obj
        where = position_name(row, column)
        if attribute == "color":
            color = str(self.rng.choice([c for c in COLORS if c != obj[2]]))
            text = f"make {where} {obj[2]} object {color}"
        elif attribute == "shape":
            shape = str(self.rng.choice([s for s in SHAPES if s != obj[3]]))
            text = f"make {where} {obj[3]} into a {shape}"
        else:
            size = "large" if size == "small" else "small"
            text = f"make {where} {obj[2]} object {size}"
        if not self.allowed(color, shape):
            return None
        return "change", text, tuple(sorted((*rest, (row, column, color, shape, size))))


def generate_split(
    rng: np.random.Generator, config: CSSGeneratorConfig, novel: set[tuple[str, str]], test: bool, n_images: int
) -> tuple[list[Scene], list[dict]]:
    """Scenes (image order) and mods [{kind, text, from, to}] for one split."""
    sampler = _SceneSampler(rng, config, novel, test)
    scene_ids: dict[Scene, int] = {}
    mods: dict[tuple[str, str], dict] = {}

    def image_id(scene: Scene) -> int:
        return scene_ids.setdefault(scene, len(scene_ids))

    while len(scene_ids) < n_images:
        source = sampler.base_scene()
        if source in scene_ids:
            continue
        targets: list[tuple[str, str, Scene]] = []
        for _ in range(50 * config.mods_per_scene):
            if len(targets) == config.mods_per_scene:
                break
            change = sampler.modify(source)
            if change is not None and change[2] != source and all(change[2] != t[2] for t in targets):
                targets.append(change)
        source_id = image_id(source)
        for kind, text, target in targets:
            mod = mods.setdefault((kind, text), {"kind": kind, "text": text, "from": [], "to": []})
            mod["from"].append(source_id)
            mod["to"].append(image_id(target))
    scenes = sorted(scene_ids, key=scene_ids.__getitem__)
    return scenes, list(mods.values())


def scene_to_json(scene: Scene) -> list[dict]:
    return [
        {"pos": [GRID_FRACTIONS[r], GRID_FRACTIONS[c]], "cell": position_name(r, c), "color": color, "shape": shape, "size": size}
        for r, c, color, shape, size in scene
    ]


def generate_css(out_dir: str | os.PathLike, config: CSSGeneratorConfig = CSSGeneratorConfig(), overwrite: bool = False) -> Path:
    """Write images/<split>/<id>.png and css.json under `out_dir`; returns the JSON path.

    `out_dir` must be absent, empty, or (with `overwrite`) an earlier generated CSS data set;
    anything else is refused before any image is drawn (tirg.fileio.check_output_dir).
    Everything is written into a temporary folder beside `out_dir` and renamed into place at
    the end, so an interrupted run never leaves a half-written data set behind.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(config.seed)
    novel = choose_novel_compositions(rng, config.n_novel_compositions)
    with atomic_directory(out_dir, CSS_DATA, overwrite) as staging:
        description: dict = {
            "format": FORMAT,
            "version": 1,
            "generator": asdict(config),
            "image_size": IMAGE_SIZE,
            "novel_compositions": sorted([list(pair) for pair in novel]),
            "splits": {},
        }
        for split, n_images in (("train", config.n_train), ("test", config.n_test)):
            scenes, mods = generate_split(rng, config, novel, split == "test", n_images)
            (staging / "images" / split).mkdir(parents=True)
            images = []
            for index, scene in enumerate(scenes):
                file = f"images/{split}/{index:06d}.png"
                Image.fromarray(render(scene)).save(staging / file, compress_level=1)
                images.append({"file": file, "label": index, "caption": scene_caption(scene), "objects": scene_to_json(scene)})
            description["splits"][split] = {"images": images, "mods": mods}
        with open(staging / DESCRIPTION_FILE, "w") as f:
            json.dump(description, f)
    return out_dir / DESCRIPTION_FILE
