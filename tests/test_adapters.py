"""Real-data adapters on small fixtures in each reference format (tests/data/adapters)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.media_points import load_points
from media_fixtures import cloud, make_point_cloud_file
from train.adapters import ADAPTERS, read_audiocaps, read_cap3d, read_clotho, read_coco, read_msrvtt, read_webvid
from train.adapters.__main__ import main
from train.world.records import read_manifest

DATA = Path(__file__).parent / "data" / "adapters"


def by_id(adapted) -> dict:
    return {r.sample_id: r for r in adapted.records}


def test_coco_official_and_karpathy_formats():
    official = read_coco(str(DATA / "coco" / "captions_val2014.json"), str(DATA / "coco" / "images"), "val")
    records = by_id(official)
    assert set(records) == {"coco-42", "coco-73"} and official.missing == ["99"]
    red = records["coco-42"]
    assert red.captions == ["A red square on a table.", "Something red."] and red.caption == red.captions[0]
    assert red.modality == "image" and red.split == "val" and red.source == "coco" and os.path.isfile(red.path)
    assert red.properties == {"image_id": 42, "file_name": "COCO_val2014_000000000042.jpg"}
    karpathy = by_id(read_coco(str(DATA / "coco" / "karpathy_val.json"), str(DATA / "coco")))
    assert karpathy["coco-COCO_val2014_000000000042"].captions == red.captions
    assert karpathy["coco-COCO_val2014_000000000073"].path == str(DATA / "coco" / "images" /
                                                                  "COCO_val2014_000000000073.jpg")


def test_audiocaps_groups_captions_per_clip_and_finds_common_file_names():
    adapted = read_audiocaps(str(DATA / "audiocaps" / "val.csv"), str(DATA / "audiocaps" / "audio"), "val")
    records = by_id(adapted)
    assert set(records) == {"audiocaps-dQw4w9WgXcQ_30", "audiocaps-k3xZ9aB1c2_0"}
    assert records["audiocaps-dQw4w9WgXcQ_30"].captions == ["A man speaks while music plays", "Music and a voice"]
    assert records["audiocaps-k3xZ9aB1c2_0"].path.endswith("Yk3xZ9aB1c2.wav")
    assert records["audiocaps-dQw4w9WgXcQ_30"].properties == {"youtube_id": "dQw4w9WgXcQ", "start_time": 30}
    assert adapted.missing == ["missingClip_10"]


def test_clotho_keeps_all_five_captions():
    adapted = read_clotho(str(DATA / "clotho" / "clotho_captions_evaluation.csv"), str(DATA / "clotho" / "audio"))
    (record,) = adapted.records
    assert record.sample_id == "clotho-Night crickets" and len(record.captions) == 5
    assert record.captions[0] == "Crickets chirp at night." and record.modality == "audio"
    assert adapted.missing == ["Not downloaded"]


def test_msrvtt_json_list_and_split_filter():
    info = str(DATA / "msrvtt" / "videodatainfo.json")
    videos = str(DATA / "msrvtt" / "videos")
    adapted = read_msrvtt(info, videos)
    assert set(by_id(adapted)) == {"msrvtt-video0", "msrvtt-video7"} and adapted.missing == ["video9"]
    assert by_id(adapted)["msrvtt-video0"].captions == ["a car drives down a road", "a vehicle moving on the street"]
    only_test = read_msrvtt(info, videos, "test", only_split="test")
    assert [r.sample_id for r in only_test.records] == ["msrvtt-video7"] and only_test.records[0].split == "test"
    listed = read_msrvtt(str(DATA / "msrvtt" / "lavis_test.json"), videos)
    assert [r.captions for r in listed.records] == [["a car drives down a road"], ["a woman is cooking"]]


def test_webvid_finds_page_dir_and_flat_layouts():
    adapted = read_webvid(str(DATA / "webvid" / "results_2M_val.csv"), str(DATA / "webvid" / "videos"))
    records = by_id(adapted)
    assert records["webvid-1066705"].path.endswith(os.path.join("000001_000050", "1066705.mp4"))
    assert records["webvid-1066706"].caption == "Waves crash on rocks, slow motion"
    assert adapted.missing == ["1066707"] and records["webvid-1066706"].modality == "video"


def test_cap3d_headerless_csv_with_point_cloud_files():
    adapted = read_cap3d(str(DATA / "cap3d" / "Cap3D_automated_Objaverse_no3Dword.csv"), str(DATA / "cap3d" / "points"))
    records = by_id(adapted)
    chair = records["cap3d-ed51a51909ee46c780db3a85e821feb2"]
    assert chair.caption == "A wooden chair with four legs, a backrest" and chair.modality == "points"
    assert np.load(chair.path).shape == (32, 6)
    assert records["cap3d-3a11ab4e"].path.endswith(os.path.join("3a11ab4e", "3a11ab4e_8192.npz"))
    assert adapted.missing == ["ffff0000"]
    for record in adapted.records:  # what the features stage will do with each
        assert load_points(record.path, num_points=16).xyz.shape == (16, 3)


@pytest.mark.parametrize("name, wrong_file", [
    ("coco", "msrvtt/videodatainfo.json"), ("audiocaps", "clotho/clotho_captions_evaluation.csv"),
    ("clotho", "webvid/results_2M_val.csv"), ("msrvtt", "coco/captions_val2014.json"),
    ("webvid", "audiocaps/val.csv"), ("cap3d", "coco/karpathy_val.json"),
])
def test_a_file_in_another_format_is_a_clear_error(name, wrong_file):
    with pytest.raises(ValueError, match="not a"):
        ADAPTERS[name](str(DATA / wrong_file), str(DATA))


def test_command_writes_a_manifest_the_world_reader_loads(tmp_path, capsys):
    out = tmp_path / "coco" / "manifest.jsonl"
    assert main(["coco", "--annotations", str(DATA / "coco" / "captions_val2014.json"), "--media-dir",
                 str(DATA / "coco" / "images"), "--out", str(out), "--split", "val"]) == 0
    assert "2 records; 1 items without a media file" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert os.path.isabs(rows[0]["path"]), "media outside the manifest's folder keep absolute paths"
    records = read_manifest(str(out))
    assert [r.sample_id for r in records] == ["coco-42", "coco-73"] and all(os.path.isfile(r.path) for r in records)
    with pytest.raises(SystemExit):
        main(["coco", "--annotations", str(DATA / "coco" / "captions_val2014.json"), "--media-dir",
              str(tmp_path), "--out", str(out)])
    with pytest.raises(SystemExit):
        main(["cap3d", "--annotations", str(tmp_path / "absent.csv"), "--media-dir", str(tmp_path), "--out",
              str(out)])


def test_a_relative_media_folder_outside_the_manifests_folder_is_found_again(tmp_path, monkeypatch):
    """The README's layout: --media-dir train2014 from the current folder, the manifest under data/."""
    monkeypatch.chdir(DATA / "coco")
    out = tmp_path / "real" / "train" / "image" / "manifest.jsonl"
    assert main(["coco", "--annotations", "captions_val2014.json", "--media-dir", "images", "--out", str(out)]) == 0
    monkeypatch.chdir(tmp_path)
    records = read_manifest(str(out))
    assert records and all(os.path.isfile(r.path) for r in records)


def test_command_keeps_one_official_msrvtt_split(tmp_path, capsys):
    out = tmp_path / "manifest.jsonl"
    command = ["msrvtt", "--annotations", str(DATA / "msrvtt" / "videodatainfo.json"), "--media-dir",
               str(DATA / "msrvtt" / "videos"), "--out", str(out), "--split", "test"]
    assert main(command + ["--only-split", "test"]) == 0
    assert [r.sample_id for r in read_manifest(str(out))] == ["msrvtt-video7"]
    with pytest.raises(SystemExit):
        main(command + ["--only-split", "val"])
    assert "invalid choice: 'val'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["coco", "--annotations", str(DATA / "coco" / "captions_val2014.json"), "--media-dir", str(DATA),
              "--out", str(out), "--only-split", "test"])
    assert "--only-split applies to msrvtt only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no split names"):
        read_msrvtt(str(DATA / "msrvtt" / "lavis_test.json"), str(DATA / "msrvtt" / "videos"), only_split="test")


@pytest.mark.parametrize("name, annotations, media", [
    ("coco", "coco/captions_val2014.json", "coco/images"), ("audiocaps", "audiocaps/val.csv", "audiocaps/audio"),
    ("clotho", "clotho/clotho_captions_evaluation.csv", "clotho/audio"),
    ("msrvtt", "msrvtt/videodatainfo.json", "msrvtt/videos"), ("webvid", "webvid/results_2M_val.csv", "webvid/videos"),
    ("cap3d", "cap3d/Cap3D_automated_Objaverse_no3Dword.csv", "cap3d/points"),
])
def test_a_file_saved_with_a_byte_order_mark_reads_the_same(tmp_path, name, annotations, media):
    with_bom = tmp_path / Path(annotations).name
    with_bom.write_bytes(b"\xef\xbb\xbf" + (DATA / annotations).read_bytes())
    plain = ADAPTERS[name](str(DATA / annotations), str(DATA / media))
    marked = ADAPTERS[name](str(with_bom), str(DATA / media))
    assert [vars(r) for r in marked.records] == [vars(r) for r in plain.records] and marked.records
    assert marked.missing == plain.missing


def test_clotho_columns_other_than_numbered_captions_are_not_captions(tmp_path):
    annotations = tmp_path / "clotho_captions_development.csv"
    annotations.write_text("file_name,caption_2,caption_keywords,caption_1,sound_id\n"
                           "Night crickets.wav,Insects chirp.,crickets;night,Crickets chirp.,123\n")
    (record,) = read_clotho(str(annotations), str(DATA / "clotho" / "audio")).records
    assert record.captions == ["Crickets chirp.", "Insects chirp."]


def test_cap3d_pt_point_clouds_are_listed_and_load(tmp_path):
    """Cap3D's PointCloud_pt_zips layout: {uid}.pt, one (6, 16384) tensor per object."""
    make_point_cloud_file(tmp_path / "ed51a51909ee46c780db3a85e821feb2.pt", cloud(n=16384, with_rgb=True))
    annotations = str(DATA / "cap3d" / "Cap3D_automated_Objaverse_no3Dword.csv")
    manifest = tmp_path / "manifest.jsonl"
    main(["cap3d", "--annotations", annotations, "--media-dir", str(tmp_path), "--out", str(manifest)])
    (record,) = read_manifest(str(manifest))
    assert record.sample_id == "cap3d-ed51a51909ee46c780db3a85e821feb2" and record.path.endswith(".pt")
    cloud_read = load_points(record.path, num_points=512)
    assert cloud_read.xyz.shape == (512, 3) and cloud_read.rgb.shape == (512, 3)


def test_cap3d_caption_is_everything_after_the_first_comma(tmp_path):
    annotations = tmp_path / "Cap3D_automated_Objaverse.csv"
    annotations.write_text('ed51a51909ee46c780db3a85e821feb2,A wooden chair, four legs, a backrest\r\n'
                           '3a11ab4e,"A ""sports"" car, red"\r\n\r\n')
    records = by_id(read_cap3d(str(annotations), str(DATA / "cap3d" / "points")))
    assert records["cap3d-ed51a51909ee46c780db3a85e821feb2"].caption == "A wooden chair, four legs, a backrest"
    assert records["cap3d-3a11ab4e"].caption == 'A "sports" car, red'
    annotations.write_text("uid,caption\n3a11ab4e,a car\njust-a-uid\n")
    with pytest.raises(ValueError, match=r"Cap3D_automated_Objaverse.csv line 3: not a Cap3D row"):
        read_cap3d(str(annotations), str(DATA / "cap3d" / "points"))


@pytest.mark.parametrize("name, file_name, text, message", [
    ("audiocaps", "val.csv", "audiocap_id,youtube_id,start_time,caption\n1,abc,30,ok\n2,def,30\n",
     "val.csv line 3: missing 'caption'"),
    ("audiocaps", "val.csv", "youtube_id,start_time,caption\nabc,half,ok\n",
     "val.csv line 2: start_time 'half' is not a number"),
    ("clotho", "clotho.csv", "file_name,caption_1\na.wav,ok\n,lost\n", "clotho.csv line 3: missing 'file_name'"),
    ("webvid", "webvid.csv", 'videoid,name\n1,"two\nlines"\n2,\n', "webvid.csv line 4: missing 'name'"),
    ("coco", "captions.json", json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                          "annotations": [{"image_id": 1, "caption": "x"}, {"image_id": 1}]}),
     r"captions.json annotations\[1\]: missing 'caption'"),
    ("coco", "captions.json", json.dumps({"images": [{"file_name": "a.jpg"}], "annotations": []}),
     r"captions.json images\[0\]: missing 'id'"),
    ("coco", "karpathy.json", json.dumps([{"image": "a.jpg", "caption": "x"}, {"image": "b.jpg", "caption": 5}]),
     "karpathy.json entry 1: 'caption' must be a string or a list of strings"),
    ("coco", "karpathy.json", "[{", "karpathy.json: not a json file"),
    ("msrvtt", "info.json", json.dumps({"videos": [{"split": "train"}], "sentences": []}),
     r"info.json videos\[0\]: missing 'video_id'"),
    ("msrvtt", "info.json", json.dumps({"videos": [], "sentences": [{"video_id": "video0"}]}),
     r"info.json sentences\[0\]: missing 'caption'"),
    ("msrvtt", "lavis.json", json.dumps([{"video": "v.mp4", "caption": "x"}, {"video": "w.mp4"}]),
     "lavis.json entry 1: missing 'caption'"),
    ("cap3d", "cap3d.csv", "uid1,a chair\nuid2,\n", "cap3d.csv line 2: missing caption after uid uid2"),
])
def test_a_malformed_entry_is_an_error_naming_the_file_and_the_entry(tmp_path, name, file_name, text, message):
    annotations = tmp_path / file_name
    annotations.write_text(text)
    with pytest.raises(ValueError, match=message):
        ADAPTERS[name](str(annotations), str(tmp_path))


def test_command_prints_where_the_malformed_entry_is(tmp_path, capsys):
    annotations = tmp_path / "val.csv"
    annotations.write_text("youtube_id,start_time,caption\nabc,30\n")
    with pytest.raises(SystemExit):
        main(["audiocaps", "--annotations", str(annotations), "--media-dir", str(tmp_path), "--out",
              str(tmp_path / "manifest.jsonl")])
    assert f"{annotations} line 2: missing 'caption'" in capsys.readouterr().err


@pytest.mark.parametrize("name, file_name, text, options, looked_for", [
    ("coco", "captions.json", json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}), [],
     "entries of 'images' with a caption in 'annotations'"),
    ("audiocaps", "val.csv", "audiocap_id,youtube_id,start_time,caption\n", [],
     "rows with youtube_id, start_time and caption"),
    ("msrvtt", "info.json", (DATA / "msrvtt" / "videodatainfo.json").read_text(), ["--only-split", "validate"],
     "entries of 'videos' of split 'validate' with a caption"),
])
def test_command_refuses_a_file_without_captioned_items(tmp_path, capsys, name, file_name, text, options, looked_for):
    annotations = tmp_path / file_name
    annotations.write_text(text)
    out = tmp_path / "manifest.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--annotations", str(annotations), "--media-dir", str(tmp_path), "--out", str(out), *options])
    error = capsys.readouterr().err
    assert exit_info.value.code != 0 and not out.exists()
    assert f"{annotations}: 0 captioned items as a {name} file (looked for {looked_for}" in error


def test_items_without_captions_are_not_counted_as_missing_media(tmp_path, capsys):
    annotations = tmp_path / "captions.json"
    annotations.write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.jpg"}, {"id": 2, "file_name": "x.jpg"}],
                                       "annotations": [{"image_id": 1, "caption": "a cat"}]}))
    assert read_coco(str(annotations), str(tmp_path)).missing == ["1"]
    with pytest.raises(SystemExit):
        main(["coco", "--annotations", str(annotations), "--media-dir", str(tmp_path), "--out", str(tmp_path / "m")])
    assert f"none of the 1 captioned items in {annotations} has a media file under {tmp_path} (e.g. 1)" in \
        capsys.readouterr().err


def test_command_says_where_the_feature_stage_looks_for_the_manifest(tmp_path, capsys):
    command = ["coco", "--annotations", str(DATA / "coco" / "captions_val2014.json"), "--media-dir",
               str(DATA / "coco" / "images"), "--split", "val"]
    assert main(command + ["--out", str(tmp_path / "coco.jsonl")]) == 0
    assert "write this one as --out ROOT/val/image/manifest.jsonl" in capsys.readouterr().err
    assert main(command + ["--out", str(tmp_path / "real" / "val" / "image" / "manifest.jsonl")]) == 0
    hint = capsys.readouterr().err
    real = tmp_path.resolve() / "real"
    common = f"--data {real} --split val --modality image"
    assert f"next: python -m train.features {common} --out {real}_features" in hint
    assert f"python -m train.qa_gen {common} --out {real}_instructions" in hint, "the defaults are the tiny world's"
    validate = tmp_path / "real" / "validate" / "image" / "manifest.jsonl"
    assert main(command[:-1] + ["validate", "--out", str(validate)]) == 0
    assert "(--split train)" in capsys.readouterr().err
