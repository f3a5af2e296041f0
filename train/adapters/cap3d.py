"""Cap3D csv (uid, caption; released without a header) with one point-cloud file per uid.

Point clouds are found as {uid}.npy / .npz / .ply (Cap3D's PointCloud_zips), or in the reference's layout
{uid}/{uid}_8192.npz. Cap3D's .pt release (PointCloud_pt_zips, pickled torch tensors) is not accepted: the point
loader (core/media_points.py) cannot open it, so a uid that has only a .pt file counts as missing and a note says so.
"""
from __future__ import annotations

import csv

from train.adapters.base import Adapted, find_media, open_text, with_extensions

POINT_EXTENSIONS = ("npy", "npz", "ply")


def _stems(uid: str) -> list[str]:
    return [uid, f"{uid}_8192", f"{uid}/{uid}_8192"]


def read_cap3d(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    with open_text(annotations) as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["uid", "caption"]:
        rows = rows[1:]
    if not rows or any(len(row) < 2 for row in rows):
        raise ValueError(f"{annotations}: not a Cap3D csv (expected rows of uid,caption)")
    adapted = Adapted()
    for uid, caption, *_ in rows:
        candidates = with_extensions(_stems(uid), POINT_EXTENSIONS)
        adapted.add("cap3d", "points", split, uid, find_media(media_dir, candidates), [caption], {"uid": uid})
    only_pt = [uid for uid in adapted.missing if find_media(media_dir, with_extensions(_stems(uid), ["pt"]))]
    if only_pt:
        adapted.notes.append(f"{len(only_pt)} uids have only a .pt point cloud (e.g. {only_pt[0]}), which the point "
                             "loader (core/media_points.py) cannot read; they count as missing. Use Cap3D's .ply "
                             "point clouds (PointCloud_zips) instead.")
    return adapted
