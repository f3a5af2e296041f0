"""Cap3D csv (uid, caption; released without a header) with one point-cloud file per uid.

Everything after a row's first comma is its caption: some releases leave commas in captions unquoted, which a csv
reader would split into extra columns and so cut the caption short; quoted captions are unquoted.

Point clouds are found as {uid}.npy / .npz / .ply (Cap3D's PointCloud_zips), or in the reference's layout
{uid}/{uid}_8192.npz. Cap3D's .pt release (PointCloud_pt_zips, pickled torch tensors) is not accepted: the point
loader (core/media_points.py) cannot open it, so a uid that has only a .pt file counts as missing and a note says so.
"""
from __future__ import annotations

from train.adapters.base import Adapted, find_media, read_text, with_extensions

POINT_EXTENSIONS = ("npy", "npz", "ply")


def _stems(uid: str) -> list[str]:
    return [uid, f"{uid}_8192", f"{uid}/{uid}_8192"]


def read_cap3d(annotations: str, media_dir: str, split: str = "train") -> Adapted:
    rows = []
    for number, line in enumerate(read_text(annotations).splitlines(), start=1):
        uid, comma, caption = (part.strip() for part in line.partition(","))
        if not line.strip() or (number == 1 and (uid.lower(), caption.lower()) == ("uid", "caption")):
            continue
        if not comma or not uid:
            raise ValueError(f"{annotations} line {number}: not a Cap3D row (expected uid,caption)")
        caption = _unquoted(caption).strip()
        if not caption:
            raise ValueError(f"{annotations} line {number}: missing caption after uid {uid}")
        rows.append((uid, caption))
    adapted = Adapted(looked_for="uid,caption rows")
    for uid, caption in rows:
        candidates = with_extensions(_stems(uid), POINT_EXTENSIONS)
        adapted.add("cap3d", "points", split, uid, find_media(media_dir, candidates), [caption], {"uid": uid})
    only_pt = [uid for uid in adapted.missing if find_media(media_dir, with_extensions(_stems(uid), ["pt"]))]
    if only_pt:
        adapted.notes.append(f"{len(only_pt)} uids have only a .pt point cloud (e.g. {only_pt[0]}), which the point "
                             "loader (core/media_points.py) cannot read; they count as missing. Use Cap3D's .ply "
                             "point clouds (PointCloud_zips) instead.")
    return adapted


def _unquoted(field: str) -> str:
    """A csv-quoted field ("a chair, wooden" with "" for a quote) as its text; an unquoted one as it is."""
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field
