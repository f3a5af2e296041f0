"""Cap3D csv (uid, caption; released without a header) with one point-cloud file per uid.

Everything after a row's first comma is its caption: some releases leave commas in captions unquoted, which a csv
reader would split into extra columns and so cut the caption short; quoted captions are unquoted.

Point clouds are found as {uid}.ply (Cap3D's PointCloud_zips), {uid}.pt (its PointCloud_pt_zips), .npy / .npz, or
in the reference's layout {uid}/{uid}_8192.npz; core/media_points.py reads them all.
"""
from __future__ import annotations

from train.adapters.base import Adapted, find_media, read_text, with_extensions

POINT_EXTENSIONS = ("npy", "npz", "ply", "pt")


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
    return adapted


def _unquoted(field: str) -> str:
    """A csv-quoted field ("a chair, wooden" with "" for a quote) as its text; an unquoted one as it is."""
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field
