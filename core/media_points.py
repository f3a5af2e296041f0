"""3D inputs: point-cloud and mesh files become one fixed-size cloud, centred in the unit sphere.

Point files are read as they are (.npy, .npz, .pcd, .xyz/.txt, .ply without faces, Cap3D's .pt tensors); meshes (.obj, .stl, .glb,
.off, .ply with faces) are sampled on their surface, keeping vertex, face or texture colours when present.
Farthest-point sampling then keeps `num_points` points that cover the whole shape, as the 3D encoders expect.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from core.media_checks import (DEFAULT_LIMITS, CorruptFileError, InvalidContentError, LimitExceededError,
                               MediaLimits, PathLike, UnsupportedFormatError, check_file, first_line)

MESH_SAMPLES_PER_POINT = 4
"""A mesh surface is sampled this many times denser than asked, so farthest-point sampling has room to spread."""

FPS_CANDIDATES_PER_POINT = 16
"""Clouds larger than this many times `num_points` are first thinned at random: farthest-point sampling is
O(N x num_points), and a dense random subset covers the same shape."""

NUMPY_KEYS = ("points", "arr_0")
NPY_SIGNATURE = b"\x93NUMPY"


@dataclass
class PointCloud:
    """`xyz` (N,3) float32 inside the unit sphere; `rgb` (N,3) float32 in [0,1] or None; `source` "points" or
    "mesh" (what the file held); `diagonal`: the bounding-box diagonal in the file's own units, before
    normalising (a viewer frames the file's object by it)."""

    xyz: np.ndarray
    rgb: Optional[np.ndarray]
    source: str
    diagonal: float


def load_points(path: PathLike, num_points: int = 1024, limits: MediaLimits = DEFAULT_LIMITS,
                seed: int = 0) -> PointCloud:
    """Read a point cloud or mesh, normalise it into the unit sphere and keep `num_points` points (farthest-point
    sampled; a cloud with fewer points repeats some, chosen with `seed`)."""
    if num_points < 1:
        raise ValueError(f"num_points must be at least 1, not {num_points}")
    p = check_file(path, "points", limits)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        table = _read_npy(p, limits)
    elif suffix == ".npz":
        table = _read_npz(p, limits)
    elif suffix == ".pcd":
        table = _read_pcd(p, limits)
    elif suffix in (".xyz", ".txt"):
        table = _read_text(p, limits)
    elif suffix == ".pt":
        table = _read_torch_tensor(p, limits)
    else:
        return _load_with_trimesh(p, num_points, limits, seed)
    xyz, rgb = _split_columns(p, table)
    return _finish(p, xyz, rgb, "points", num_points, seed)


def normalize_to_unit_sphere(xyz: np.ndarray) -> np.ndarray:
    """Centre on the mean and scale so the farthest point lies on the unit sphere (as ULIP and LAVIS do)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    centred = xyz - xyz.mean(axis=0)
    radius = float(np.sqrt((centred ** 2).sum(axis=1).max())) if len(centred) else 0.0
    if not np.isfinite(radius) or radius == 0.0:
        raise ValueError("cannot normalise: the points are empty, not finite, or all at one position")
    return (centred / radius).astype(np.float32)


def farthest_point_sample(xyz: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of `k` points spread over the cloud: each next point is the one farthest from all chosen so far.

    The first point is drawn with `seed`. Vectorised over the points with preallocated buffers, so 100k -> 1024
    takes a fraction of a second.
    """
    points = np.asarray(xyz, dtype=np.float32)
    n = len(points)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of points ({n}), not {k}")
    x, y, z = (np.ascontiguousarray(points[:, axis]) for axis in range(3))
    nearest = np.full(n, np.inf, dtype=np.float32)
    distance = np.empty(n, dtype=np.float32)
    scratch = np.empty(n, dtype=np.float32)
    chosen = np.empty(k, dtype=np.int64)
    current = int(np.random.default_rng(seed).integers(n))
    for i in range(k):
        chosen[i] = current
        np.subtract(x, x[current], out=distance)
        np.square(distance, out=distance)
        for axis in (y, z):
            np.subtract(axis, axis[current], out=scratch)
            np.square(scratch, out=scratch)
            distance += scratch
        np.minimum(nearest, distance, out=nearest)
        current = int(nearest.argmax())
    return chosen


def _finish(path: Path, xyz: np.ndarray, rgb: Optional[np.ndarray], source: str, num_points: int,
            seed: int, bounds: Optional[np.ndarray] = None) -> PointCloud:
    """Check, normalise and subsample; `bounds` (2,3) are the object's own (a mesh's), else those of `xyz`."""
    if len(xyz) == 0:
        raise InvalidContentError(path, "contains no points")
    if not np.isfinite(xyz).all():
        raise InvalidContentError(path, "contains NaN or infinite coordinates")
    if rgb is not None and not np.isfinite(rgb).all():
        raise InvalidContentError(path, "contains NaN or infinite colour values")
    if np.ptp(xyz, axis=0).max() == 0.0:
        raise InvalidContentError(path, "all points are at the same position, so the object has no shape")
    low, high = bounds if bounds is not None else (xyz.min(axis=0), xyz.max(axis=0))
    diagonal = float(np.linalg.norm(np.asarray(high) - np.asarray(low)))
    xyz = normalize_to_unit_sphere(xyz)
    keep = _choose(xyz, num_points, seed)
    return PointCloud(xyz[keep], None if rgb is None else rgb[keep].astype(np.float32), source, diagonal)


def _choose(xyz: np.ndarray, num_points: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(xyz)
    if n < num_points:
        return np.concatenate([np.arange(n), np.sort(rng.choice(n, num_points - n, replace=True))])
    if n > FPS_CANDIDATES_PER_POINT * num_points:
        candidates = np.sort(rng.choice(n, FPS_CANDIDATES_PER_POINT * num_points, replace=False))
        return candidates[farthest_point_sample(xyz[candidates], num_points, seed)]
    return farthest_point_sample(xyz, num_points, seed)


def _split_columns(path: Path, table: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(N,3) is x y z; (N,6) adds r g b, in [0,1] or, when any value is above 1, in 0..255."""
    if table.ndim != 2 or table.shape[1] not in (3, 6):
        raise InvalidContentError(path, f"expected rows of x y z or x y z r g b, i.e. shape (N, 3) or (N, 6), "
                                        f"but found shape {tuple(table.shape)}")
    xyz = table[:, :3].astype(np.float64)
    if table.shape[1] == 3:
        return xyz, None
    return xyz, _scale_colours(table[:, 3:].astype(np.float64))


def _scale_colours(rgb: np.ndarray) -> np.ndarray:
    if rgb.size and np.nanmax(rgb) > 1.0:
        rgb = rgb / 255.0
    return np.clip(rgb, 0.0, 1.0)


def _check_point_count(path: Path, count: int, limits: MediaLimits, what: str = "points") -> None:
    """`what` names the counted things as the user knows them: a mesh's are "vertices"."""
    if count <= 0:
        raise InvalidContentError(path, f"contains no {what}" if count == 0 else f"declares {count} {what}")
    if count > limits.max_points:
        raise LimitExceededError(path, f"has {count:,} {what}, over the limit of {limits.max_points:,}",
                                 "max_points", count, limits.max_points)


def _read_npy(path: Path, limits: MediaLimits) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            if f.read(len(NPY_SIGNATURE)) != NPY_SIGNATURE:
                raise CorruptFileError(path, "is not a NumPy .npy file (it lacks the .npy signature)")
            f.seek(0)
            _check_npy_header(path, f, limits)
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CorruptFileError(path, f"is not a readable NumPy .npy array ({first_line(e)})") from e


def _read_npz(path: Path, limits: MediaLimits) -> np.ndarray:
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(path, "is not a NumPy .npz archive (it is not a zip file)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in NUMPY_KEYS if k in archive.files), None)
            if key is None:
                raise InvalidContentError(path, f"holds no array named {' or '.join(NUMPY_KEYS)} "
                                                f"(found: {', '.join(archive.files) or 'none'})")
            with archive.zip.open(f"{key}.npy") as member:
                _check_npy_header(path, member, limits)
            return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CorruptFileError(path, f"is not a readable NumPy .npz archive ({first_line(e)})") from e


def _check_npy_header(path: Path, f, limits: MediaLimits) -> None:
    """Shape and type from the header alone, so an oversized or non-numeric array is refused before loading."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise UnsupportedFormatError(path, f"uses .npy format version {version}, which is not supported")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InvalidContentError(path, f"holds {dtype} values, not numbers")
    if shape:
        _check_point_count(path, int(shape[0]), limits)


def _read_text(path: Path, limits: MediaLimits) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8-sig")  # Windows tools start the file with a byte-order mark
    except UnicodeDecodeError as e:
        raise CorruptFileError(path, "is not a text file of 'x y z [r g b]' rows") from e
    _check_point_count(path, sum(1 for line in text.splitlines() if line.strip() and line[0] != "#"), limits)
    try:
        return np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.float64, comments="#", ndmin=2)
    except ValueError as e:
        raise CorruptFileError(path, f"has rows that are not 'x y z [r g b]' numbers ({first_line(e)})") from e


def _read_torch_tensor(path: Path, limits: MediaLimits) -> np.ndarray:
    """One saved tensor of points. Cap3D's PointCloud_pt_zips hold (6, 16384) per object, channels first: its
    Point-E fine-tuning indexes points on the second axis and feeds x y z R G B (colours 0..255) to Point-E as they
    are. A (N, 3|6) table is read as rows. Loaded with `weights_only`, so a file cannot run pickled code."""
    import torch

    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors of many types on damaged files
        raise CorruptFileError(path, f"is not a readable PyTorch tensor file ({first_line(e)})") from e
    if not isinstance(value, torch.Tensor):
        raise InvalidContentError(path, f"holds a {type(value).__name__}, not one tensor of points")
    if value.is_complex() or value.dtype == torch.bool:
        raise InvalidContentError(path, f"holds {value.dtype} values, not coordinates")
    table = value.detach().to(torch.float64).numpy()
    if table.ndim == 2 and table.shape[0] in (3, 6) and table.shape[1] not in (3, 6):
        table = table.T
    if table.ndim == 2:
        _check_point_count(path, len(table), limits)
    return table


PCD_TYPES = {"F": "f", "U": "u", "I": "i"}


def _read_pcd(path: Path, limits: MediaLimits) -> np.ndarray:
    """Point Cloud Library files, ascii or binary; a packed `rgb`/`rgba` field becomes three colour columns."""
    data = path.read_bytes()
    header, body = _pcd_header(path, data)
    try:
        names = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        types = [PCD_TYPES[t.upper()] for t in header["TYPE"]]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(names))]
        count = int(header["POINTS"][0]) if "POINTS" in header else \
            int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        encoding = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as e:
        raise CorruptFileError(path, f"has an incomplete or invalid PCD header ({first_line(e)})") from e
    if not len(names) == len(sizes) == len(types) == len(counts):
        raise CorruptFileError(path, "has a PCD header whose FIELDS, SIZE, TYPE and COUNT lines disagree")
    if not {"x", "y", "z"} <= set(names):
        raise InvalidContentError(path, f"has no x, y, z fields (fields: {' '.join(names)})")
    _check_point_count(path, count, limits)
    try:
        dtype = np.dtype([(n, f"<{t}{s}", (c,)) for n, t, s, c in zip(names, types, sizes, counts)])
    except TypeError as e:
        raise CorruptFileError(path, f"declares field types numpy cannot read ({first_line(e)})") from e
    if encoding == "ascii":
        columns = _read_text_rows(path, body, sum(counts))
        if len(columns) != count:
            raise CorruptFileError(path, f"declares {count} points but holds {len(columns)} rows")
        offsets = np.cumsum([0] + counts)
        fields = {n: columns[:, offsets[i]].astype(dtype[n].base) for i, n in enumerate(names)}
    elif encoding == "binary":
        if len(body) < count * dtype.itemsize:
            raise CorruptFileError(path, f"is truncated: {count} points need {count * dtype.itemsize} bytes, "
                                         f"found {len(body)}")
        packed = np.frombuffer(body, dtype=dtype, count=count)
        fields = {n: packed[n][:, 0] for n in names}
    else:
        raise UnsupportedFormatError(path, f"uses PCD encoding '{encoding}'; save it as ascii or binary")
    columns = [fields[a].astype(np.float64) for a in ("x", "y", "z")]
    colour = next((n for n in ("rgb", "rgba") if n in fields), None)
    if colour is not None:
        packed_rgb = fields[colour]
        packed_rgb = packed_rgb.view(np.uint32) if packed_rgb.itemsize == 4 else packed_rgb.astype(np.uint32)
        columns += [((packed_rgb >> shift) & 255).astype(np.float64) for shift in (16, 8, 0)]
    return np.stack(columns, axis=1)


def _pcd_header(path: Path, data: bytes) -> tuple[dict[str, list[str]], bytes]:
    header: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in header:
        end = data.find(b"\n", offset)
        if end < 0:
            raise CorruptFileError(path, "is not a PCD file (its header never reaches a DATA line)")
        try:
            line = data[offset:end].decode("ascii").strip()
        except UnicodeDecodeError as e:
            raise CorruptFileError(path, "is not a PCD file (its header is not text)") from e
        offset = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.upper()] = values
    return header, data[offset:]


def _read_text_rows(path: Path, body: bytes, width: int) -> np.ndarray:
    try:
        rows = np.loadtxt(io.StringIO(body.decode("ascii")), dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptFileError(path, f"has point rows that are not numbers ({first_line(e)})") from e
    if rows.size and rows.shape[1] != width:
        raise CorruptFileError(path, f"has rows of {rows.shape[1]} values where the header declares {width}")
    return rows


def _load_with_trimesh(path: Path, num_points: int, limits: MediaLimits, seed: int) -> PointCloud:
    import trimesh

    suffix = path.suffix.lower()
    try:
        # A .ply may hold bare points; everything else is a mesh, with scenes (.glb) merged into one.
        geometry = trimesh.load(str(path), force=None if suffix == ".ply" else "mesh", process=False)
    except Exception as e:  # trimesh's parsers raise many unrelated types on damaged input
        # Its PLY reader's KeyError is only the name of a vertex property the file lacks ("'y'").
        missing_property = suffix == ".ply" and isinstance(e, KeyError) and e.args
        reason = f"no {e.args[0]!r} field" if missing_property else first_line(e)
        raise CorruptFileError(path, f"is not a readable {suffix[1:].upper()} file ({reason})") from e
    if isinstance(geometry, trimesh.PointCloud):
        _check_point_count(path, len(geometry.vertices), limits)
        colours = np.asarray(geometry.colors)
        rgb = colours[:, :3] / 255.0 if colours.size else None
        return _finish(path, np.asarray(geometry.vertices, dtype=np.float64), rgb, "points", num_points, seed)
    if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
        raise InvalidContentError(path, "has no mesh faces, so there is no surface to sample (the file is empty, "
                                        "damaged, or holds bare points: save those as .ply, .xyz or .npy)")
    return _sample_mesh(path, geometry, num_points, limits, seed)


def _sample_mesh(path: Path, mesh, num_points: int, limits: MediaLimits, seed: int) -> PointCloud:
    import trimesh

    if len(mesh.faces) > limits.max_mesh_faces:
        raise LimitExceededError(path, f"has {len(mesh.faces):,} faces, over the limit of "
                                       f"{limits.max_mesh_faces:,}", "max_mesh_faces", len(mesh.faces),
                                 limits.max_mesh_faces)
    _check_point_count(path, len(mesh.vertices), limits, "vertices")
    if not np.isfinite(mesh.vertices).all():
        raise InvalidContentError(path, "contains NaN or infinite coordinates")
    if not mesh.area > 0.0:
        raise InvalidContentError(path, "has faces of zero area, so there is no surface to sample")
    samples, face_index, barycentric = trimesh.sample.sample_surface(
        mesh, num_points * MESH_SAMPLES_PER_POINT, return_barycentric=True, seed=seed)
    rgb = _surface_colours(mesh, face_index, barycentric)
    return _finish(path, np.asarray(samples, dtype=np.float64), rgb, "mesh", num_points, seed, mesh.bounds)


def _surface_colours(mesh, face_index: np.ndarray, barycentric: np.ndarray) -> Optional[np.ndarray]:
    """Colours at the sampled points: vertex colours interpolated, face colours copied, textures via vertices."""
    visual = mesh.visual
    if visual.kind == "texture":
        try:
            visual = visual.to_color()
        except Exception:  # a texture without an image has no colours to give
            return None
    if visual.kind == "vertex":
        corners = np.asarray(visual.vertex_colors, dtype=np.float64)[mesh.faces[face_index]][:, :, :3]
        return (corners * barycentric[:, :, None]).sum(axis=1) / 255.0
    if visual.kind == "face":
        return np.asarray(visual.face_colors, dtype=np.float64)[face_index][:, :3] / 255.0
    return None

