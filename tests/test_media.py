"""Media loading: every supported format decodes to the right content, and every bad input raises one MediaError
subclass with a one-line message naming the file. Fixtures are built per test (media_fixtures), CPU only."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.media import (KIND_EXTENSIONS, CorruptFileError, EmptyFileError, InvalidContentError,
                        LimitExceededError, MediaError, MediaLimits, PointCloud, UnsupportedFormatError, VideoClip,
                        detect_kind, farthest_point_sample, file_digest, load_audio, load_image, load_points,
                        load_video, normalize_to_unit_sphere)
from media_fixtures import (RED_PER_SECOND, cloud, ffmpeg, make_audio, make_image, make_mesh_file,
                            make_point_cloud_file, make_video, truncate)

LOADERS = {"image": load_image, "audio": load_audio, "video": load_video, "points": load_points}
ALL_EXTENSIONS = sorted({(ext, kind) for kind, exts in KIND_EXTENSIONS.items() for ext in exts})


def dominant_frequency(samples: np.ndarray, sample_rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[spectrum.argmax()])


def raises_media_error(error_type, call, *args, **kwargs) -> MediaError:
    """The call raises `error_type`, and its message is one line that names the file."""
    with pytest.raises(error_type) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{caught.value.path.split('/')[-1]}: ")
    return caught.value


# --- images -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["png", "jpg", "jpeg", "webp", "bmp", "gif"])
def test_image_formats_load_as_rgb(tmp_path, ext):
    image = load_image(make_image(tmp_path / f"i.{ext}", size=(64, 48)))
    assert image.mode == "RGB" and image.size == (64, 48)
    left, right = np.asarray(image)[24, 8].astype(int), np.asarray(image)[24, 56].astype(int)
    assert np.abs(left - (255, 0, 0)).max() < 12 and np.abs(right - (0, 0, 255)).max() < 12


def test_image_exif_orientation_is_applied(tmp_path):
    # Orientation 6: the stored picture must turn 90 degrees clockwise, so its left (red) half ends up on top.
    image = load_image(make_image(tmp_path / "rotated.jpg", size=(64, 48), exif_orientation=6))
    assert image.size == (48, 64)
    pixels = np.asarray(image).astype(int)
    assert pixels[8, 24, 0] > 240 and pixels[56, 24, 2] > 240


def test_image_transparency_is_composited_on_white(tmp_path):
    pixels = np.asarray(load_image(make_image(tmp_path / "alpha.png", mode="RGBA")))
    assert tuple(pixels[24, 8]) == (255, 0, 0)
    assert tuple(pixels[24, 56]) == (255, 255, 255)


@pytest.mark.parametrize("mode, name", [("L", "grey.png"), ("P", "palette.png"), ("LA", "grey_alpha.png"),
                                        ("I;16", "deep.png"), ("CMYK", "print.jpg")])
def test_image_modes_become_rgb(tmp_path, mode, name):
    if mode == "I;16":
        source, expected = Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)), 40000 / 65535 * 255
    else:
        source, expected = Image.new("RGB", (8, 8), (200, 200, 200)).convert(mode), 200
    source.save(tmp_path / name)
    image = load_image(tmp_path / name)
    assert image.mode == "RGB"
    assert abs(float(np.asarray(image, dtype=float).mean()) - expected) < 8


def test_animated_gif_gives_its_first_frame_and_counts_as_video(tmp_path):
    path = make_image(tmp_path / "anim.gif", frames=3)
    assert detect_kind(path) == "video"
    assert tuple(np.asarray(load_image(path))[24, 8]) == (255, 0, 0)
    assert detect_kind(make_image(tmp_path / "still.gif")) == "image"


def test_image_over_pixel_limit(tmp_path):
    error = raises_media_error(LimitExceededError, load_image, make_image(tmp_path / "big.png", size=(64, 48)),
                               MediaLimits(max_image_pixels=1000))
    assert error.limit_name == "max_image_pixels" and error.value == 64 * 48
    assert "max_image_pixels" in str(error) and "64x48" in str(error)


def test_image_just_over_the_pixel_limit_shows_by_how_much(tmp_path):
    error = raises_media_error(LimitExceededError, load_image, make_image(tmp_path / "big.png", size=(64, 48)),
                               MediaLimits(max_image_pixels=64 * 48 - 1))
    assert "64x48 = 0.0031 megapixels, over the 0.003071 megapixel limit" in str(error)


def test_audio_just_over_the_length_limit_shows_by_how_much(tmp_path):
    error = raises_media_error(LimitExceededError, load_audio, make_audio(tmp_path / "long.wav", seconds=2.04),
                               limits=MediaLimits(max_audio_seconds=2))
    assert "lasts 2.04 s, over the 2 s limit" in str(error)


def test_image_truncated(tmp_path):
    path = truncate(make_image(tmp_path / "cut.png", size=(64, 48)), 0.6)
    raises_media_error(CorruptFileError, load_image, path)


# --- audio ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_audio_formats_decode_to_mono_16k(tmp_path, ext):
    samples = load_audio(make_audio(tmp_path / f"a.{ext}", seconds=1.0, freq=440, sample_rate=44100))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 16000) < 800
    assert abs(dominant_frequency(samples) - 440) < 5
    assert 0.3 < np.abs(samples).max() < 0.8


def test_audio_stereo_is_mixed_down(tmp_path):
    # Channel 0 carries 440 Hz and channel 1 880 Hz: the mono mix must hold both at equal strength.
    samples = load_audio(make_audio(tmp_path / "stereo.wav", freq=440, channels=2))
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / 16000)
    low, high = spectrum[np.abs(freqs - 440).argmin()], spectrum[np.abs(freqs - 880).argmin()]
    assert samples.ndim == 1 and 0.8 < low / high < 1.25


def test_audio_resamples_to_the_asked_rate(tmp_path):
    samples = load_audio(make_audio(tmp_path / "a.flac", seconds=0.5, freq=300, sample_rate=22050),
                         sample_rate=8000)
    assert len(samples) == 4000 and abs(dominant_frequency(samples, 8000) - 300) < 5


@pytest.mark.parametrize("amplitude", [0.0, 5e-5])
def test_audio_silence(tmp_path, amplitude):
    error = raises_media_error(InvalidContentError, load_audio, make_audio(tmp_path / "quiet.wav",
                                                                           amplitude=amplitude))
    assert "silent" in str(error)


@pytest.mark.parametrize("ext", ["wav", "mp3"])
def test_audio_over_length_limit(tmp_path, ext):
    error = raises_media_error(LimitExceededError, load_audio, make_audio(tmp_path / f"long.{ext}", seconds=2.0),
                               limits=MediaLimits(max_audio_seconds=1.5))
    assert error.limit_name == "max_audio_seconds" and 1.9 < error.value < 2.2
    assert "1.5 s" in str(error) and "2.0 s" in str(error)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_audio_truncated(tmp_path, ext):
    path = truncate(make_audio(tmp_path / f"cut.{ext}", seconds=2.0), 0.5)
    raises_media_error(CorruptFileError, load_audio, path)


def test_audio_with_image_content(tmp_path):
    path = tmp_path / "photo.wav"
    path.write_bytes(make_image(tmp_path / "photo.png").read_bytes())
    raises_media_error(CorruptFileError, load_audio, path)


def test_audio_with_video_content_names_it_plainly(tmp_path):
    path = tmp_path / "clip.wav"
    path.write_bytes(make_video(tmp_path / "clip.mp4", seconds=1.0).read_bytes())
    error = raises_media_error(CorruptFileError, load_audio, path)
    assert "its content is MOV/MP4 video, not sound" in str(error), "not ffmpeg's list mov,mp4,m4a,3gp,3g2,mj2"


# --- video ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["mp4", "webm", "avi", "mov", "gif"])
def test_video_formats_sample_frames_uniformly(tmp_path, ext):
    clip = load_video(make_video(tmp_path / f"v.{ext}", seconds=2.0, fps=10), num_frames=4)
    assert isinstance(clip, VideoClip) and len(clip.frames) == len(clip.times_s) == 4
    assert all(f.mode == "RGB" and f.size == (64, 64) for f in clip.frames)
    assert abs(clip.duration_s - 2.0) < 0.1 and abs(clip.fps - 10) < 0.5
    assert np.allclose(clip.times_s, [clip.duration_s * (i + 0.5) / 4 for i in range(4)])
    reds = [float(np.asarray(f)[..., 0].mean()) for f in clip.frames]
    assert all(b >= a for a, b in zip(reds, reds[1:]))
    if ext != "gif":  # GIF's palette blurs the ramp; elsewhere each frame shows its own time within a frame
        for red, t in zip(reds, clip.times_s):
            assert abs(red - RED_PER_SECOND * t) < RED_PER_SECOND / clip.fps + 8


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi", "mov"])
def test_video_with_a_sound_track_gives_its_frames(tmp_path, ext):
    clip = load_video(make_video(tmp_path / f"av.{ext}", seconds=1.0, with_audio=True))
    assert len(clip.frames) == 4 and abs(clip.duration_s - 1.0) < 0.1


def test_video_one_frame_is_the_middle(tmp_path):
    clip = load_video(make_video(tmp_path / "v.mp4", seconds=2.0), num_frames=1)
    assert clip.times_s == [1.0]
    assert abs(float(np.asarray(clip.frames[0])[..., 0].mean()) - RED_PER_SECOND * 1.0) < 18


def test_video_with_only_an_audio_track_has_zero_frames(tmp_path):
    path = tmp_path / "sound.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=16000", "-t", "1", "-c:a", "aac", str(path))
    error = raises_media_error(InvalidContentError, load_video, path)
    assert "no video frames" in str(error)


def test_video_with_an_empty_video_stream_has_zero_frames(tmp_path):
    path = tmp_path / "none.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-frames:v", "0", "-c:v", "libx264", str(path))
    raises_media_error(InvalidContentError, load_video, path)


@pytest.mark.parametrize("ext", ["mp4", "mov", "webm"])
def test_video_truncated(tmp_path, ext):
    path = truncate(make_video(tmp_path / f"cut.{ext}", seconds=2.0, with_audio=True), 0.5)
    raises_media_error(CorruptFileError, load_video, path)


def test_video_truncated_with_its_index_first(tmp_path):
    # "faststart" puts the mp4 index at the front, so a cut file still opens; the missing data must be noticed.
    whole = make_video(tmp_path / "whole.mp4", seconds=2.0, with_audio=True)
    path = tmp_path / "faststart.mp4"
    ffmpeg("-i", str(whole), "-c", "copy", "-movflags", "+faststart", str(path))
    error = raises_media_error(CorruptFileError, load_video, truncate(path, 0.5))
    assert "truncated" in str(error)


def test_video_with_image_content(tmp_path):
    path = tmp_path / "photo.mp4"
    path.write_bytes(make_image(tmp_path / "photo.png").read_bytes())
    error = raises_media_error(CorruptFileError, load_video, path)
    assert "still image" in str(error)


@pytest.mark.parametrize("limits, name", [
    (MediaLimits(max_video_seconds=1.5), "max_video_seconds"),
    (MediaLimits(max_video_frames=15), "max_video_frames"),
    (MediaLimits(max_image_pixels=4000), "max_image_pixels"),
])
def test_video_over_limits(tmp_path, limits, name):
    error = raises_media_error(LimitExceededError, load_video, make_video(tmp_path / "v.mp4", seconds=2.0),
                               limits=limits)
    assert error.limit_name == name and name in str(error)


# --- 3D ---------------------------------------------------------------------------------------------------------

def assert_normalised(cloud_out: PointCloud, num_points: int) -> None:
    assert cloud_out.xyz.shape == (num_points, 3) and cloud_out.xyz.dtype == np.float32
    radii = np.linalg.norm(cloud_out.xyz, axis=1)
    assert radii.max() <= 1.0 + 1e-5 and radii.max() > 0.9
    assert np.abs(cloud_out.xyz.mean(axis=0)).max() < 0.2


@pytest.mark.parametrize("ext", ["npy", "npz", "pt", "ply", "pcd", "xyz", "txt"])
@pytest.mark.parametrize("with_rgb", [False, True])
def test_point_cloud_formats(tmp_path, ext, with_rgb):
    points = cloud(n=3000, with_rgb=with_rgb)
    result = load_points(make_point_cloud_file(tmp_path / f"p.{ext}", points), num_points=512)
    assert_normalised(result, 512)
    assert result.source == "points"
    if with_rgb:
        assert result.rgb.shape == (512, 3) and result.rgb.dtype == np.float32
        assert 0.0 <= result.rgb.min() and result.rgb.max() <= 1.0 and abs(result.rgb.mean() - 0.5) < 0.05
    else:
        assert result.rgb is None


def test_point_cloud_keeps_each_points_colour(tmp_path):
    points = cloud(n=600, with_rgb=True)
    result = load_points(make_point_cloud_file(tmp_path / "p.npy", points), num_points=600)
    expected = normalize_to_unit_sphere(points[:, :3])
    order = np.lexsort(expected.T)
    got_order = np.lexsort(result.xyz.T)
    assert np.allclose(result.xyz[got_order], expected[order], atol=1e-6)
    assert np.allclose(result.rgb[got_order], points[order, 3:] / 255, atol=1e-6)


def test_pcd_binary(tmp_path):
    points = cloud(n=800, with_rgb=True)
    result = load_points(make_point_cloud_file(tmp_path / "b.pcd", points, pcd_encoding="binary"), num_points=800)
    assert_normalised(result, 800)
    assert np.allclose(np.sort(result.rgb[:, 0]), np.sort(points[:, 3] / 255), atol=1e-6)


@pytest.mark.parametrize("encoding", ["ascii", "binary"])
@pytest.mark.parametrize("declared, message", [(0, "contains no points"), (-1, "declares -1 points")])
def test_pcd_declaring_no_or_negative_points_is_refused(tmp_path, encoding, declared, message):
    """A negative count once let numpy read the whole body past the point limit; zero broke the ascii reader."""
    header = f"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\n" \
             f"POINTS {declared}\nDATA {encoding}\n"
    body = b"" if encoding == "ascii" else np.zeros((5, 3), "<f4").tobytes()
    path = tmp_path / "p.pcd"
    path.write_bytes(header.encode() + body)
    with pytest.raises(InvalidContentError, match=message):
        load_points(path)


def test_cap3d_pt_tensor_is_read_channels_first_with_colours_in_0_255(tmp_path):
    """Cap3D's PointCloud_pt_zips: (6, 16384) per object, x y z R G B along the first axis."""
    points = cloud(n=16384, with_rgb=True).astype(np.float32).astype(np.float64)  # as the float32 tensor holds them
    result = load_points(make_point_cloud_file(tmp_path / "uid.pt", points), num_points=16384)
    order, got_order = np.lexsort(normalize_to_unit_sphere(points[:, :3]).T), np.lexsort(result.xyz.T)
    assert np.allclose(result.rgb[got_order], points[order, 3:] / 255, atol=1e-6)


def test_pt_file_holding_something_else_than_a_tensor_is_refused(tmp_path):
    import torch

    torch.save({"points": torch.zeros(10, 3)}, tmp_path / "dict.pt")
    assert "holds a dict, not one tensor of points" in str(
        raises_media_error(InvalidContentError, load_points, tmp_path / "dict.pt"))


class _TouchesAFileWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_pt_file_cannot_run_pickled_code(tmp_path):
    import torch

    marker = tmp_path / "ran"
    torch.save(_TouchesAFileWhenUnpickled(marker), tmp_path / "evil.pt")
    raises_media_error(CorruptFileError, load_points, tmp_path / "evil.pt")
    assert not marker.exists()


def test_npz_with_arr_0(tmp_path):
    result = load_points(make_point_cloud_file(tmp_path / "p.npz", key="arr_0"), num_points=256)
    assert_normalised(result, 256)


@pytest.mark.parametrize("ext", ["obj", "stl", "ply", "glb", "off"])
def test_mesh_formats_are_sampled_on_the_surface(tmp_path, ext):
    result = load_points(make_mesh_file(tmp_path / f"m.{ext}"), num_points=1024, seed=3)
    assert_normalised(result, 1024)
    assert result.source == "mesh"
    # Every sample lies on one of the box's faces: one of its coordinates sits at that axis's extreme.
    low, high = result.xyz.min(axis=0), result.xyz.max(axis=0)
    on_face = (np.abs(result.xyz - low) < 1e-4) | (np.abs(result.xyz - high) < 1e-4)
    assert on_face.any(axis=1).all()


@pytest.mark.parametrize("ext", ["obj", "ply", "glb"])
def test_mesh_vertex_colours_are_kept(tmp_path, ext):
    result = load_points(make_mesh_file(tmp_path / f"red.{ext}", colour=(255, 0, 0)), num_points=256)
    assert result.rgb is not None and np.allclose(result.rgb, [1.0, 0.0, 0.0], atol=1e-6)


def test_points_are_deterministic_for_a_seed(tmp_path):
    path = make_mesh_file(tmp_path / "m.obj")
    first, again, other = (load_points(path, 256, seed=s) for s in (1, 1, 2))
    assert np.array_equal(first.xyz, again.xyz) and not np.array_equal(first.xyz, other.xyz)


def test_fewer_points_than_asked_are_repeated(tmp_path):
    path = make_point_cloud_file(tmp_path / "few.npy", cloud(n=100))
    result = load_points(path, num_points=1024, seed=0)
    assert_normalised(result, 1024)
    assert len(np.unique(result.xyz, axis=0)) == 100
    assert np.array_equal(result.xyz, load_points(path, num_points=1024, seed=0).xyz)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("ext", ["npy", "xyz", "pcd", "pt"])
def test_points_with_invalid_coordinates(tmp_path, ext, bad):
    points = cloud(n=50)
    points[7, 1] = bad
    error = raises_media_error(InvalidContentError, load_points, make_point_cloud_file(tmp_path / f"p.{ext}",
                                                                                        points))
    assert "NaN or infinite" in str(error)


def test_mesh_with_invalid_coordinates(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    raises_media_error(InvalidContentError, load_points, path)


@pytest.mark.parametrize("ext", ["obj", "off"])
def test_mesh_without_faces(tmp_path, ext):
    path = tmp_path / f"bare.{ext}"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n" if ext == "obj" else "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    error = raises_media_error(InvalidContentError, load_points, path)
    assert "no mesh faces" in str(error)


def test_points_all_at_one_position(tmp_path):
    raises_media_error(InvalidContentError, load_points,
                       make_point_cloud_file(tmp_path / "dot.npy", np.ones((20, 3))))


def test_points_with_wrong_columns(tmp_path):
    error = raises_media_error(InvalidContentError, load_points,
                               make_point_cloud_file(tmp_path / "four.npy", np.ones((20, 4))))
    assert "(20, 4)" in str(error)


def test_mesh_over_the_vertex_limit_names_vertices(tmp_path):
    error = raises_media_error(LimitExceededError, load_points, make_mesh_file(tmp_path / "box.off"),
                               limits=MediaLimits(max_points=4))
    assert error.limit_name == "max_points" and "has 8 vertices, over the limit of 4" in str(error)


@pytest.mark.parametrize("ext", ["npy", "npz", "pt", "ply", "pcd", "xyz"])
def test_points_over_point_limit(tmp_path, ext):
    error = raises_media_error(LimitExceededError, load_points, make_point_cloud_file(tmp_path / f"p.{ext}"),
                               limits=MediaLimits(max_points=1000))
    assert error.limit_name == "max_points" and error.value == 2000


def test_mesh_over_face_limit(tmp_path):
    error = raises_media_error(LimitExceededError, load_points, make_mesh_file(tmp_path / "m.stl"),
                               limits=MediaLimits(max_mesh_faces=10))
    assert error.limit_name == "max_mesh_faces" and error.value == 12


@pytest.mark.parametrize("name", ["p.npy", "p.npz", "p.pt", "b.pcd", "m.glb", "m.ply"])
def test_points_truncated(tmp_path, name):
    path = tmp_path / name
    if name.startswith("m."):
        make_mesh_file(path, subdivisions=2)
    else:
        make_point_cloud_file(path, pcd_encoding="binary")
    raises_media_error(CorruptFileError, load_points, truncate(path, 0.5))


def test_ply_without_a_y_column_names_the_missing_field(tmp_path):
    path = tmp_path / "x_only.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n2\n")
    error = raises_media_error(CorruptFileError, load_points, path)
    assert "no 'y' field" in str(error)


def test_npz_without_a_known_key(tmp_path):
    error = raises_media_error(InvalidContentError, load_points, make_point_cloud_file(tmp_path / "p.npz",
                                                                                        key="cloud"))
    assert "cloud" in str(error)


def test_farthest_point_sample_spreads_and_is_fast():
    import time

    xyz = np.random.default_rng(0).random((100_000, 3)).astype(np.float32)
    start = time.perf_counter()
    chosen = farthest_point_sample(xyz, 1024, seed=0)
    elapsed = time.perf_counter() - start
    assert len(np.unique(chosen)) == 1024 and elapsed < 2.0

    def closest_pair(points):
        d = np.linalg.norm(points[:, None] - points[None], axis=-1)
        return d[np.triu_indices(len(points), 1)].min()

    random = np.random.default_rng(1).choice(len(xyz), 1024, replace=False)
    assert closest_pair(xyz[chosen]) > 3 * closest_pair(xyz[random])
    assert np.array_equal(chosen, farthest_point_sample(xyz, 1024, seed=0))


def test_normalize_to_unit_sphere():
    xyz = normalize_to_unit_sphere(cloud(n=500))
    assert np.allclose(xyz.mean(axis=0), 0, atol=1e-6)
    assert np.isclose(np.linalg.norm(xyz, axis=1).max(), 1.0)


# --- every kind ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext, kind", ALL_EXTENSIONS)
def test_garbage_bytes_raise_only_media_errors(tmp_path, ext, kind):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(np.random.default_rng(len(ext)).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    raises_media_error(MediaError, LOADERS[kind], path)


@pytest.mark.parametrize("ext, kind", ALL_EXTENSIONS)
def test_empty_files(tmp_path, ext, kind):
    path = tmp_path / f"empty{ext}"
    path.touch()
    error = raises_media_error(EmptyFileError, LOADERS[kind], path)
    assert "empty" in str(error)


@pytest.mark.parametrize("kind, make", [
    ("image", lambda p: make_image(p / "i.png")),
    ("audio", lambda p: make_audio(p / "a.wav")),
    ("video", lambda p: make_video(p / "v.mp4")),
    ("points", lambda p: make_point_cloud_file(p / "c.npy")),
])
def test_file_size_limit_is_checked_first(tmp_path, kind, make):
    path = make(tmp_path)
    error = raises_media_error(LimitExceededError, LOADERS[kind], path, limits=MediaLimits(max_file_mb=0.0001))
    assert error.limit_name == "max_file_mb" and "MB" in str(error)


def test_wrong_extension_for_the_loader(tmp_path):
    error = raises_media_error(UnsupportedFormatError, load_image, make_audio(tmp_path / "tone.wav"))
    assert "audio" in str(error) and "png" in str(error)


def test_wrong_extension_message_lists_the_accepted_types_grammatically(tmp_path):
    error = raises_media_error(UnsupportedFormatError, load_audio, make_image(tmp_path / "picture.png"))
    assert str(error) == ("picture.png: a .png file is an image, not audio; audio can be given as wav, flac, ogg, "
                          "mp3")


def test_missing_file(tmp_path):
    raises_media_error(MediaError, load_image, tmp_path / "nowhere.png")


@pytest.mark.parametrize("name, kind", [("a.PNG", "image"), ("b.jpeg", "image"), ("c.MP3", "audio"),
                                        ("d.webm", "video"), ("e.off", "points"), ("f.pcd", "points")])
def test_detect_kind(name, kind):
    assert detect_kind(name) == kind


@pytest.mark.parametrize("name", ["notes.docx", "archive.zip", "noextension"])
def test_detect_kind_rejects_unknown_types(name):
    with pytest.raises(UnsupportedFormatError, match="not a supported file type"):
        detect_kind(name)


def test_file_digest_is_the_content_hash(tmp_path):
    first = make_image(tmp_path / "a.png")
    copy = tmp_path / "renamed.png"
    copy.write_bytes(first.read_bytes())
    other = make_image(tmp_path / "b.png", size=(10, 10))
    assert file_digest(first) == file_digest(copy) == hashlib.sha256(first.read_bytes()).hexdigest()
    assert file_digest(other) != file_digest(first)


def test_media_errors_survive_pickling(tmp_path):
    error = raises_media_error(LimitExceededError, load_image, make_image(tmp_path / "big.png"),
                               MediaLimits(max_image_pixels=100))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is LimitExceededError and str(copy) == str(error) and copy.limit_name == error.limit_name


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_points"):
        MediaLimits(max_points=0)


def test_text_point_file_with_a_byte_order_mark(tmp_path):
    """Windows tools write UTF-8 with a BOM; the first coordinate must still parse."""
    path = tmp_path / "bom.xyz"
    rows = "\n".join(f"{x} {x * 2} {x * 3}" for x in np.linspace(-1, 1, 40))
    path.write_text(rows, encoding="utf-8-sig")
    assert load_points(path, num_points=40).xyz.shape == (40, 3)
