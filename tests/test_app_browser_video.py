"""The video tab in a real browser (the fixtures of test_browser.py): an animated GIF and an .avi, which gr.Video's
own upload refused or could not play, are taken and play in the preview player."""
from __future__ import annotations

import pytest

from media_fixtures import make_video
from test_browser import browser, open_tab, page, pytestmark  # noqa: F401 (fixtures; skipped without chromium)

HAS_METADATA = 1
"""HTMLMediaElement.HAVE_METADATA: the browser has parsed the stream, so it can play it."""


@pytest.mark.parametrize("name", ["spin.gif", "clip.avi"])
def test_a_video_the_browser_cannot_play_as_uploaded_plays_in_the_preview(page, tmp_path, name):  # noqa: F811
    clip = make_video(tmp_path / name, seconds=1.0, with_audio=name.endswith(".avi"))
    open_tab(page, "input-video")
    page.set_input_files("#video-upload input[type=file]", str(clip))
    player = page.wait_for_selector(f"#video-preview video[src*='{clip.stem}.mp4']", state="attached")
    page.wait_for_function("video => video.readyState >= " + str(HAS_METADATA), arg=player, timeout=15_000)
    assert page.locator(".toast-body").count() == 0
