"""Tiny-world 3D scenes: 1 to 3 different objects standing on the ground in a row, as coloured point clouds.

Each object is a small triangle mesh (trimesh primitives, composites assembled from them), normalised so its
largest half-extent is 1 and its base is at y = 0, then scaled to its size, turned about the vertical axis and
placed. Points are sampled on the surfaces by area, so a cloud looks the same however the mesh was tessellated.
Output: float32 (N, 6) arrays, x y z r g b, y up, colours in [0, 1], saved as .npy.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import trimesh

from train.world.vocabulary import COLOURS, MAX_POINTS_OBJECTS, POINTS_POSITIONS, SHAPES, SIZES

EXTENSION = "npy"
NUM_POINTS = 2048
MIN_POINTS_PER_OBJECT = 160
HALF_EXTENT = {"small": (0.14, 0.18), "large": (0.28, 0.34)}
"""Half the largest side of an object, in scene units, per size word."""
MIN_GAP = 0.22
"""Smallest free space between neighbouring objects, so that objects stay separate clusters."""
MAX_SCENE_YAW_DEG = 20.0
"""The whole row turns a little; more would blur which object is on the left."""

_Z_TO_Y = trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0])


def _upright(mesh: trimesh.Trimesh, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> trimesh.Trimesh:
    """Turn a trimesh primitive (axis along z) to stand along y, then move it."""
    mesh = mesh.copy()
    mesh.apply_transform(_Z_TO_Y)
    mesh.apply_translation([x, y, z])
    return mesh


def _box(width: float, height: float, depth: float, x: float = 0.0, y: float = 0.0, z: float = 0.0):
    return trimesh.creation.box(extents=[width, height, depth], transform=trimesh.transformations.translation_matrix(
        [x, y + height / 2, z]))


def _cylinder(radius: float, height: float, x: float = 0.0, y: float = 0.0, z: float = 0.0):
    """A vertical cylinder whose base is at height y."""
    return _upright(trimesh.creation.cylinder(radius=radius, height=height, sections=24), x, y + height / 2, z)


def _cone(radius: float, height: float, y: float = 0.0):
    return _upright(trimesh.creation.cone(radius=radius, height=height, sections=24), 0.0, y, 0.0)


def _sphere(radius: float, y: float):
    return trimesh.creation.icosphere(subdivisions=2, radius=radius).apply_translation([0, y, 0])


def _wheel(x: float, z: float):
    wheel = trimesh.creation.cylinder(radius=0.25, height=0.16, sections=20)
    return wheel.apply_translation([x, 0.25, z])


def _roof(width: float, depth: float, base: float, height: float) -> trimesh.Trimesh:
    """A triangular prism running along z, its ridge `height` above `base`."""
    w, d = width / 2, depth / 2
    top = base + height
    vertices = [[-w, base, -d], [w, base, -d], [0, top, -d], [-w, base, d], [w, base, d], [0, top, d]]
    faces = [[0, 2, 1], [3, 4, 5], [0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [2, 0, 3], [2, 3, 5]]
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def _legs(radius: float, height: float, spread_x: float, spread_z: float) -> list[trimesh.Trimesh]:
    return [_cylinder(radius, height, sx * spread_x, 0, sz * spread_z) for sx in (-1, 1) for sz in (-1, 1)]


def _parts(shape: str) -> list[trimesh.Trimesh]:
    if shape == "cube":
        return [_box(2, 2, 2)]
    if shape == "sphere":
        return [_sphere(1.0, 1.0)]
    if shape == "cone":
        return [_cone(0.8, 2.0)]
    if shape == "cylinder":
        return [_cylinder(0.7, 2.0)]
    if shape == "torus":
        return [_upright(trimesh.creation.torus(major_radius=0.7, minor_radius=0.28), 0, 0.28, 0)]
    if shape == "tree":
        return [_cylinder(0.16, 0.8), _cone(0.75, 1.6, y=0.6)]
    if shape == "house":
        return [_box(1.6, 1.2, 1.4), _roof(1.8, 1.5, 1.2, 0.8)]
    if shape == "table":
        return [_box(2.0, 0.15, 1.3, y=1.0), *_legs(0.07, 1.0, 0.85, 0.5)]
    if shape == "chair":
        return [_box(1.0, 0.12, 1.0, y=0.9), _box(1.0, 1.0, 0.12, y=1.02, z=-0.44), *_legs(0.06, 0.9, 0.42, 0.42)]
    if shape == "snowman":
        return [_sphere(0.55, 0.55), _sphere(0.4, 1.38), _sphere(0.28, 1.98)]
    if shape == "lamp":
        return [_cylinder(0.45, 0.1), _cylinder(0.05, 1.4, y=0.1), _cone(0.6, 0.8, y=1.3)]
    if shape == "car":
        return [_box(2.0, 0.5, 1.0, y=0.25), _box(1.1, 0.4, 0.9, x=-0.1, y=0.75),
                *(_wheel(x, z) for x in (-0.6, 0.6) for z in (-0.5, 0.5))]
    raise ValueError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")


@functools.lru_cache(maxsize=None)
def unit_mesh(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """(triangles (F, 3, 3), areas (F,)) of the shape, base at y = 0, centred in x and z, largest half-extent 1."""
    mesh = trimesh.util.concatenate(_parts(shape))
    low, high = mesh.bounds
    mesh.apply_translation([-(low[0] + high[0]) / 2, -low[1], -(low[2] + high[2]) / 2])
    mesh.apply_scale(2.0 / float((high - low).max()))
    triangles = np.asarray(mesh.triangles, dtype=np.float64)
    return triangles, np.asarray(mesh.area_faces, dtype=np.float64)


def footprint_radius(shape: str) -> float:
    """How far the unit shape reaches from its vertical axis, at any turn."""
    triangles, _ = unit_mesh(shape)
    return float(np.hypot(triangles[..., 0], triangles[..., 2]).max())


def _yaw(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def sample_scene(rng: np.random.Generator) -> dict:
    """The properties record of a new 3D scene."""
    count = int(rng.integers(1, MAX_POINTS_OBJECTS + 1))
    shapes = [str(s) for s in rng.choice(list(SHAPES), size=count, replace=False)]
    objects = []
    for shape in shapes:
        size = SIZES[int(rng.integers(2))]
        objects.append({"shape": shape, "name": SHAPES[shape].name("points"),
                        "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))], "size": size,
                        "scale": round(float(rng.uniform(*HALF_EXTENT[size])), 3),
                        "yaw": round(float(rng.uniform(0, 360)), 1)})
    reaches = [footprint_radius(o["shape"]) * o["scale"] for o in objects]
    gaps = [float(rng.uniform(MIN_GAP, MIN_GAP + 0.12)) for _ in range(count - 1)]
    row = [0.0]
    for i in range(1, count):
        row.append(row[-1] + reaches[i - 1] + gaps[i - 1] + reaches[i])
    shift = (row[0] + row[-1]) / 2
    scene_yaw = round(float(rng.uniform(-MAX_SCENE_YAW_DEG, MAX_SCENE_YAW_DEG)), 1)
    turn = _yaw(scene_yaw)
    for obj, x in zip(objects, row):
        depth = float(rng.uniform(-0.12, 0.12))
        obj["base"] = [round(float(v), 4) for v in turn @ np.array([x - shift, 0.0, depth])]
    for rank, obj in enumerate(sorted(objects, key=lambda o: o["base"][0])):
        obj["position"] = "center" if count == 1 else ("left", "right")[rank] if count == 2 else POINTS_POSITIONS[rank]
    return {"num_points": NUM_POINTS, "up_axis": "y", "count": count, "scene_yaw": scene_yaw,
            "jitter": round(float(rng.uniform(0.002, 0.006)), 4), "objects": objects}


def _surface_points(shape: str, n: int, rng: np.random.Generator) -> np.ndarray:
    triangles, areas = unit_mesh(shape)
    chosen = triangles[rng.choice(len(areas), size=n, p=areas / areas.sum())]
    u, v = rng.random((2, n, 1))
    flip = (u + v) > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    return chosen[:, 0] + u * (chosen[:, 1] - chosen[:, 0]) + v * (chosen[:, 2] - chosen[:, 0])


def render(properties: dict, rng: np.random.Generator) -> np.ndarray:
    """(num_points, 6) float32 cloud of the record, points shuffled so their order says nothing."""
    objects = properties["objects"]
    areas = np.array([unit_mesh(o["shape"])[1].sum() * o["scale"] ** 2 for o in objects])
    spare = properties["num_points"] - MIN_POINTS_PER_OBJECT * len(objects)
    counts = MIN_POINTS_PER_OBJECT + np.floor(spare * areas / areas.sum()).astype(int)
    counts[0] += properties["num_points"] - counts.sum()
    turn = _yaw(properties["scene_yaw"])
    pieces = []
    for obj, n in zip(objects, counts):
        local = _surface_points(obj["shape"], int(n), rng) * obj["scale"]
        xyz = local @ (turn @ _yaw(obj["yaw"])).T + obj["base"]
        rgb = np.array(COLOURS[obj["colour"]]) / 255.0 * rng.uniform(0.9, 1.0, size=(int(n), 1))
        pieces.append(np.concatenate([xyz, rgb], axis=1))
    cloud = np.concatenate(pieces)
    cloud[:, :3] += rng.normal(0, properties["jitter"], size=(len(cloud), 3))
    return cloud[rng.permutation(len(cloud))].astype(np.float32)


def write(properties: dict, rng: np.random.Generator, path: str) -> None:
    with open(path, "wb") as handle:
        np.save(handle, render(properties, rng))
