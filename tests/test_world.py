"""The tiny-world generator: deterministic per seed, disjoint splits, and media that show what the records say."""
from __future__ import annotations

import json
import os

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from train.templates import caption_prompt, template_qa
from train.world import audio, captions, dataset, image, video
from train.world.__main__ import main as world_cli
from train.world.dataset import (GENERATORS, SCENE_STREAM, generate_world, load_split, make_sample, sample_rng,
                                 sample_seed)
from train.world.records import read_manifest
from train.world.vocabulary import COLOURS, COUNT_WORDS, DIRECTIONS, MOTIONS, SOUND_KINDS

PALETTE = np.array(list(COLOURS.values()), dtype=float)
COLOUR_NAMES = list(COLOURS)


def colour_masks(pixels: np.ndarray, max_distance: float = 60.0) -> dict[str, np.ndarray]:
    """Per vocabulary colour, the pixels nearest to it and within max_distance."""
    distances = np.linalg.norm(pixels[..., None, :].astype(float) - PALETTE, axis=-1)
    nearest, close = distances.argmin(-1), distances.min(-1) <= max_distance
    return {name: (nearest == i) & close for i, name in enumerate(COLOUR_NAMES)}


def scene(modality: str, index: int, split: str = "test") -> dict:
    return GENERATORS[modality].sample_scene(sample_rng(0, modality, sample_seed(split, index), SCENE_STREAM))


def first_indices(modality: str, wanted, limit: int = 3000) -> dict:
    """For each key of `wanted` (a key function of the properties), the first test index whose record has it."""
    found = {}
    for index in range(limit):
        key = wanted(scene(modality, index))
        if key is not None and key not in found:
            found[key] = index
    return found


def read_frames(path: str) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


@pytest.mark.parametrize("modality", ["image", "audio", "points", "video"])
def test_same_seed_gives_the_same_media(tmp_path, modality):
    first = make_sample(str(tmp_path / "a"), "train", modality, 0, 3)
    second = make_sample(str(tmp_path / "b"), "train", modality, 0, 3)
    assert first.properties == second.properties and first.caption == second.caption
    if modality == "video":
        assert np.array_equal(read_frames(first.path), read_frames(second.path))
    else:
        assert open(first.path, "rb").read() == open(second.path, "rb").read()
    other = make_sample(str(tmp_path / "c"), "train", modality, 0, 4)
    assert open(other.path, "rb").read() != open(first.path, "rb").read()


def test_splits_never_share_a_seed(tmp_path):
    generate_world(str(tmp_path), {"train": 4, "val": 3, "test": 3}, ["image"], progress=False)
    by_split = {s: load_split(str(tmp_path), s, "image") for s in ("train", "val", "test")}
    seeds = {s: {r.seed for r in records} for s, records in by_split.items()}
    assert not (seeds["train"] & seeds["val"] or seeds["train"] & seeds["test"] or seeds["val"] & seeds["test"])
    pictures = [open(r.path, "rb").read() for records in by_split.values() for r in records]
    assert len(set(pictures)) == len(pictures)
    assert sample_seed("val", 0) > sample_seed("train", 999_999_999)
    with pytest.raises(ValueError, match="outside"):
        sample_seed("train", 1_000_000_000)


def test_generation_resumes_without_redrawing(tmp_path):
    root = str(tmp_path)
    generate_world(root, {"train": 3, "val": 1, "test": 1}, ["image", "audio"], progress=False)
    records = load_split(root, "train", "audio")
    stamps = {r.path: os.stat(r.path).st_mtime_ns for r in records}
    original = open(records[1].path, "rb").read()
    os.remove(records[1].path)
    generate_world(root, {"train": 3, "val": 1, "test": 1}, ["image", "audio"], progress=False)
    assert open(records[1].path, "rb").read() == original
    assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items() if p != records[1].path)
    with pytest.raises(ValueError, match="seed"):
        generate_world(root, {"train": 1}, ["image"], world_seed=7, progress=False)


def test_a_changed_generator_refuses_only_its_own_modality(tmp_path, monkeypatch):
    root = str(tmp_path)
    generate_world(root, {"train": 1}, ["image", "points"], progress=False)
    monkeypatch.setitem(dataset.GENERATOR_VERSIONS, "image", 2)
    with pytest.raises(ValueError, match="image generator version 1"):
        generate_world(root, {"train": 1}, ["image"], progress=False)
    generate_world(root, {"train": 2}, ["points"], progress=False)
    generate_world(root, {"train": 0, "test": 1}, ["points"], progress=False)
    info = json.loads((tmp_path / "world.json").read_text())
    assert info["versions"] == {"image": 1, "points": 1}
    assert info["samples"] == {"train/image": 1, "train/points": 2, "test/points": 1}
    assert len(load_split(root, "train", "points")) == 2, "a split asked for 0 samples is left alone"


def test_manifest_paths_are_relative_and_resolve(tmp_path):
    assert world_cli(["--out", str(tmp_path), "--train", "2", "--val", "0", "--test", "0", "--modalities",
                      "points"]) == 0
    manifest = tmp_path / "train" / "points" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["path"] for r in rows] == ["000000.npy", "000001.npy"]
    assert set(rows[0]) == {"sample_id", "modality", "path", "caption", "captions", "properties", "split", "source",
                            "seed"}
    assert all(os.path.isfile(r.path) for r in read_manifest(str(manifest)))
    with pytest.raises(SystemExit):
        world_cli(["--out", str(tmp_path), "--modalities", "smell"])


def test_image_colours_positions_and_sizes_match_the_record(tmp_path):
    for index in range(40):
        record = make_sample(str(tmp_path), "test", "image", 0, index)
        groups = record.properties["groups"]
        masks = colour_masks(np.asarray(Image.open(record.path).convert("RGB")))
        counts = {name: int(mask.sum()) for name, mask in masks.items()}
        if len(groups) == 1:
            assert max(counts, key=counts.get) == groups[0]["colour"], record.caption
        for group in groups:
            if sum(g["colour"] == group["colour"] for g in groups) > 1:
                continue
            ys, xs = np.nonzero(masks[group["colour"]])
            assert len(xs) > 40, record.caption
            assert image.nearest_region(xs.mean(), ys.mean(), image.IMAGE_SIZE) == group["position"], record.caption
            objects = [o for o in record.properties["objects"] if o["group"] == groups.index(group)]
            low, high = image.RADIUS_PX[group["size"]]
            assert all(low <= o["radius"] <= high for o in objects)
            if len(objects) == 1:
                extent = max(np.ptp(xs), np.ptp(ys)) + 1
                assert 1.3 * objects[0]["radius"] <= extent <= 2.6 * objects[0]["radius"], record.caption


def test_video_motion_matches_the_record(tmp_path):
    indices = first_indices("video", lambda p: (p["motion"], p["speed"]) if p["motion"] in DIRECTIONS or
                            p["speed"] == "fast" else None)
    assert {m for m, _ in indices} == set(MOTIONS)
    for (motion, speed), index in sorted(indices.items()):
        record = make_sample(str(tmp_path), "test", "video", 0, index)
        frames = read_frames(record.path)
        assert frames.shape == (video.FRAMES, video.VIDEO_SIZE, video.VIDEO_SIZE, 3)
        mover = next(o for o in record.properties["objects"] if o["role"] == "moving")
        first, last = colour_masks(frames[0]), colour_masks(frames[-1])
        if motion == "change colour":
            assert first[mover["colour"]].sum() > 30 and last[mover["colour"]].sum() < 10, record.caption
            assert last[mover["colour_end"]].sum() > 30, record.caption
            continue
        start, end = first[mover["colour"]], last[mover["colour"]]
        if motion in ("grow", "shrink"):
            ratio = end.sum() / start.sum()
            assert ratio > 1.3 if motion == "grow" else ratio < 1 / 1.3, (record.caption, ratio)
            continue
        (y0, x0), (y1, x1) = np.argwhere(start).mean(0), np.argwhere(end).mean(0)
        dx, dy = x1 - x0, y1 - y0
        seen = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        assert seen == motion, record.caption
        low, high = video.TRAVEL[speed]
        assert low - 0.05 <= np.hypot(dx, dy) / video.VIDEO_SIZE <= high + 0.05, record.caption


def dominant_frequency(samples: np.ndarray, kind: str) -> float:
    """Spectral peak; the spectral centroid for noise; the voice's fundamental (autocorrelation) for speech."""
    if kind == "speech":
        lags = np.arange(40, 300)
        estimates = []
        for start in range(0, len(samples) - 640, 320):
            frame = samples[start:start + 640] - samples[start:start + 640].mean()
            if np.sqrt((frame ** 2).mean()) < 0.05:
                continue
            score = np.array([frame[:-lag] @ frame[lag:] for lag in lags]) / (frame @ frame)
            estimates.append(audio.SAMPLE_RATE / lags[np.flatnonzero(score >= 0.9 * score.max())[0]])
        return float(np.median(estimates))
    spectrum = np.abs(np.fft.rfft(samples))
    frequencies = np.fft.rfftfreq(len(samples), 1 / audio.SAMPLE_RATE)
    if kind == "hiss":
        return float((spectrum ** 2 * frequencies).sum() / (spectrum ** 2).sum())
    return float(frequencies[np.argmax(spectrum * (frequencies > 40))])


def loud_onsets(samples: np.ndarray) -> np.ndarray:
    """10 ms frames where the loudness rises past a quarter of its peak after it last fell under a tenth: the
    hysteresis keeps a chord's beating tail, which wavers around one threshold, from counting as a new event."""
    loudness = np.sqrt((samples[: len(samples) // 160 * 160].reshape(-1, 160) ** 2).mean(1))
    onsets, armed = [], True
    for frame, level in enumerate(loudness / loudness.max()):
        if armed and level > 0.25:
            onsets.append(frame)
            armed = False
        elif level < 0.1:
            armed = True
    return np.array(onsets)


def test_audio_pitch_and_events_match_the_record(tmp_path):
    indices = first_indices("audio", lambda p: (p["kind"], p["pitch"]))
    assert {k for k, _ in indices} == set(audio.available_kinds())
    for (kind, pitch), index in sorted(indices.items()):
        record = make_sample(str(tmp_path), "test", "audio", 0, index)
        samples, rate = soundfile.read(record.path, dtype="float32")
        assert rate == audio.SAMPLE_RATE and len(samples) == round(record.properties["duration"] * rate)
        assert record.properties["skipped_kinds"] == [k for k in SOUND_KINDS if k not in audio.available_kinds()]
        found = dominant_frequency(samples, kind)
        assert (found > audio.PITCH_SPLIT_HZ[kind]) == (pitch == "high"), (record.caption, found)
    for index in first_indices("audio", lambda p: p["events"] if p["kind"] in ("beep", "chord", "drum") and
                               p["tempo"] == "fast" else None).values():
        record = make_sample(str(tmp_path), "test", "audio", 0, index)
        samples, rate = soundfile.read(record.path, dtype="float32")
        onsets = loud_onsets(samples)
        assert len(onsets) == record.properties["events"], record.caption
        assert np.allclose(onsets * 0.01, record.properties["onsets"], atol=0.03), record.caption


def test_without_espeak_the_speech_kind_is_left_out_and_said_so(monkeypatch):
    monkeypatch.setattr(audio, "speech_available", lambda: False)
    records = [scene("audio", index) for index in range(80)]
    assert {r["kind"] for r in records} == set(SOUND_KINDS) - {"speech"}
    assert all(r["skipped_kinds"] == ["speech"] for r in records)


def test_point_clouds_match_the_record(tmp_path):
    for index in range(30):
        record = make_sample(str(tmp_path), "test", "points", 0, index)
        cloud = np.load(record.path)
        assert cloud.shape == (2048, 6) and cloud.dtype == np.float32
        pairs = cKDTree(cloud[:, :3]).query_pairs(0.1, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(cloud), len(cloud)))
        count, labels = connected_components(graph, directed=False)
        assert count == record.properties["count"], record.caption
        clusters = sorted((cloud[labels == c] for c in range(count)), key=lambda part: part[:, 0].mean())
        objects = sorted(record.properties["objects"], key=lambda o: o["base"][0])
        for part, obj in zip(clusters, objects):
            assert np.linalg.norm(part[:, [0, 2]].mean(0) - np.array(obj["base"])[[0, 2]]) < obj["scale"]
            rgb = part[:, 3:].mean(0) * 255
            assert COLOUR_NAMES[np.linalg.norm(PALETTE - rgb, axis=1).argmin()] == obj["colour"]
            assert 1.8 * obj["scale"] <= np.ptp(part[:, :3], axis=0).max() <= 3.0 * obj["scale"], record.caption
        assert [o["position"] for o in objects] == (["center"] if count == 1 else ["left", "right"] if count == 2
                                                    else ["left", "center", "right"])


def test_captions_read_the_record():
    groups = [{"shape": "cube", "name": "square", "colour": "red", "size": "small", "count": 2, "position": "left"},
              {"shape": "sphere", "name": "circle", "colour": "blue", "size": "large", "count": 1, "position": "top"}]
    assert captions.image_caption({"groups": groups}) == \
        "two small red squares on the left and a large blue circle at the top"
    speech = {"kind": "speech", "pitch": "high", "events": 3, "tempo": "fast", "word": "hello", "sweep": None}
    assert captions.audio_caption(speech) == 'a high voice says "hello" three times, in quick succession'
    chirp = {"kind": "chirp", "pitch": "low", "events": 1, "tempo": None, "word": None, "sweep": "rising"}
    assert captions.audio_caption(chirp) == "a single rising low chirp"
    mover = {"role": "moving", "name": "snowman", "size": None, "colour": "white", "colour_end": "white"}
    still = {"role": "still", "name": "car", "size": "large", "colour": "red"}
    assert captions.video_caption({"objects": [still, mover], "motion": "grow", "speed": "fast"}) == \
        "a white snowman grows quickly while a large red car stays still"
    objects = [{"name": "tree", "size": "small", "colour": "green", "base": [0.5, 0, 0], "position": "right"},
               {"name": "cube", "size": "large", "colour": "red", "base": [-0.5, 0, 0], "position": "left"}]
    assert captions.points_caption({"objects": objects}) == \
        "a large red cube on the left and a small green tree on the right"


@pytest.mark.parametrize("modality", ["image", "video", "audio", "points"])
def test_template_answers_are_short_and_agree_with_the_record(modality):
    expected = {"image": {"colour", "object", "count", "position", "size"},
                "video": {"count", "object", "motion", "speed", "colour"},
                "audio": {"sound", "pitch", "events"}, "points": {"count", "object", "colour"}}[modality]
    rng = np.random.default_rng(0)
    for index in range(60):
        properties = scene(modality, index)
        pairs = template_qa(modality, properties, rng)
        assert expected <= {p.property for p in pairs}
        assert all(1 <= len(p.answer.split()) <= 2 and p.answer == p.accepted[0] for p in pairs)
        assert len({p.question for p in pairs}) == len(pairs), "a question asked twice would be ambiguous"
        by_property = {}
        for p in pairs:
            by_property.setdefault(p.property, []).append(p.answer)
        count = properties.get("count", properties.get("events"))
        assert COUNT_WORDS[count] in by_property.get("count", by_property.get("events"))
        if modality == "image":
            assert set(by_property["colour"]) == {g["colour"] for g in properties["groups"]}
        if modality == "video" and properties["motion"] in DIRECTIONS:
            assert by_property["direction"] == [properties["motion"]]
        if modality == "audio":
            assert by_property["pitch"] == [properties["pitch"]]
        if modality == "points":
            assert ("size" in by_property) == (len({o["size"] for o in properties["objects"]}) == 2)
        if modality == "points" and properties["count"] > 1:
            left = next(o for o in properties["objects"] if o["position"] == "left")
            on_left = next(p for p in pairs if p.question in ("What object is on the left?", "What is on the left?"))
            assert on_left.answer == left["name"]
    assert caption_prompt(modality) in ("Describe the image briefly.", "Describe the video briefly.",
                                        "Describe the audio briefly.", "Describe the 3D object briefly.")
