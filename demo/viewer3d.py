"""The interactive 3D preview: meshes go to `gr.Model3D` (a WebGL viewer), bare point clouds to a plotly scatter.

The loader (`core.media.load_points`) decides what the file holds, so the preview shows exactly what the model will
get. `gr.Model3D` draws .stl and .glb meshes shaded; it takes .ply for a Gaussian splat and draws .obj files
without a material solid black, so those and other mesh files are converted to .glb first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import plotly.graph_objects as go

from core.media import load_points
from demo.converted import converted_copy
from demo.plots import MAX_PLOT_POINTS, point_cloud_figure

MODEL3D_MESH_SUFFIXES = (".stl", ".glb")
MESH_CAMERA_ANGLES = (45, 65)
"""`gr.Model3D`'s camera alpha and beta in degrees: the object seen from above and to the side."""
MESH_CAMERA_DIAGONALS = 1.5
"""Camera distance in bounding-box diagonals: `gr.Model3D`'s own 1.1 lets a mesh touch the canvas edges; at 1.5
its bounding sphere fits the view with room around it."""


@dataclass
class Preview3D:
    """Exactly one of `mesh_path` (a file for `gr.Model3D`, with the camera distance that frames it) and `figure`
    (a point-cloud figure) is set."""

    mesh_path: Optional[str] = None
    camera_radius: Optional[float] = None
    figure: Optional[go.Figure] = None

    def camera_position(self) -> tuple:
        """`gr.Model3D`'s camera_position for this mesh."""
        return (*MESH_CAMERA_ANGLES, self.camera_radius)


def preview_3d(path: str) -> Preview3D:
    """Load a 3D file (raises `core.media.MediaError`) and choose its viewer."""
    cloud = load_points(path, num_points=MAX_PLOT_POINTS)
    if cloud.source == "mesh":
        return Preview3D(mesh_path=mesh_for_model3d(path),
                         camera_radius=round(MESH_CAMERA_DIAGONALS * cloud.diagonal, 4))
    title = "coloured by the file's rgb" if cloud.rgb is not None else "coloured by height"
    return Preview3D(figure=point_cloud_figure(cloud.xyz, rgb=cloud.rgb, title=f"{Path(path).name} ({title})"))


def mesh_for_model3d(path: str) -> str:
    """The mesh itself when `gr.Model3D` draws its format, else a .glb copy converted with trimesh."""
    if Path(path).suffix.lower() in MODEL3D_MESH_SUFFIXES:
        return path
    return converted_copy(path, ".glb", _mesh_to_glb)


def _mesh_to_glb(source: str, target: str) -> None:
    import trimesh

    trimesh.load(source, force="mesh", process=False).export(target)
