"""Plots: real image files of non-trivial size, with the figures a reader looks for."""

from __future__ import annotations

import struct
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from click.testing import CliRunner

from streamreel.cassette import Cassette, End, Interaction, Request, Response, save
from streamreel.cli import main
from streamreel.errors import StreamreelError
from streamreel.plot import plot_cassette
from streamreel.synth import synth_cassette

TEXT = "Streams are easier to debug when you can see them. " * 6


def cut_with_stall() -> Cassette:
    """A synthetic stream that stalls for 1.2 s mid-way and is then cut."""
    item = synth_cassette(TEXT, ttft_ms=400, tps=80, seed=3).interactions[0]
    events = list(item.response.events or ())
    events = [replace(e, t=e.t + (1200 if i > 15 else 0)) for i, e in enumerate(events)][:-4]
    res = replace(item.response, events=tuple(events), end=End(t=events[-1].t + 300, reason="upstream_disconnect"))
    return Cassette(interactions=(replace(item, response=res), Interaction(request=Request(path="/x"), response=Response(body="{}"))))


def test_png_is_a_valid_image_of_real_size_and_content(tmp_path):
    out = plot_cassette(cut_with_stall(), tmp_path / "s.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 250
    assert len(data) > 20_000
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    colors = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[:: max(1, pixels.shape[0] * pixels.shape[1] // 20000)]}
    assert len(colors) > 20


def test_svg_names_ttft_stall_and_ending_as_text(tmp_path):
    out = plot_cassette(cut_with_stall(), tmp_path / "s.svg")
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "TTFT 400 ms" in text
    assert "stall 1.2" in text
    assert "end: upstream_disconnect" in text
    assert out.stat().st_size > 10_000


def test_one_panel_per_streamed_interaction(tmp_path):
    one = synth_cassette("a b c", seed=1).interactions[0]
    cas = Cassette(interactions=(one, one, one))
    small = plot_cassette(cas, tmp_path / "one.png", index=1).read_bytes()
    big = plot_cassette(cas, tmp_path / "three.png").read_bytes()
    assert struct.unpack(">II", big[16:24])[1] > 2 * struct.unpack(">II", small[16:24])[1]


def test_bad_requests_say_what_is_wrong(tmp_path):
    cas = cut_with_stall()
    with pytest.raises(StreamreelError, match=r"\.png or \.svg"):
        plot_cassette(cas, tmp_path / "s.gif")
    with pytest.raises(StreamreelError, match="no interaction 5: the cassette has 2"):
        plot_cassette(cas, tmp_path / "s.png", index=5)
    with pytest.raises(StreamreelError, match="no streamed interaction at index 1"):
        plot_cassette(cas, tmp_path / "s.png", index=1)


def test_without_matplotlib_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(StreamreelError, match=r"pip install 'streamreel\[plot\]'"):
        plot_cassette(cut_with_stall(), tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


def test_cli_plot_writes_the_file(tmp_path):
    save(cut_with_stall(), tmp_path / "c.yaml")
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "c.svg")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.svg").stat().st_size > 10_000
    bad = CliRunner().invoke(main, ["plot", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "c.jpg")])
    assert bad.exit_code == 1 and ".png or .svg" in bad.output
