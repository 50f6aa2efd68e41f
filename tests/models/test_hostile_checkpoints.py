"""A corpus of hostile checkpoints, generated here (issue 12): every card limit, a card claiming 10⁶ channels,
tensors of another architecture, lying safetensors headers, a 50 MB card, deeply nested JSON, and markup in
every card string that is shown. Each is refused by ``load_model`` with a message naming the field and the
allowed range, in bounded time and memory, or (markup) loads and is shown as text.

``CORPUS`` and :func:`write_case` are shared with tests/app/test_hostile_checkpoints.py, which puts each
hostile checkpoint next to good ones in the app."""
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dgmn.models import CheckpointError, build_segmenter, load_model, save_model
from dgmn.models.checkpoint import MAX_CARD_BYTES, check_checkpoint, json_depth, read_header

from .test_checkpoint import card

ROOT = Path(__file__).resolve().parents[2]
MARKUP = "<img src=x onerror=alert(1)>"


def good(folder: Path, name: str) -> dict:
    """Write a good tiny checkpoint ``name`` (3 classes) into ``folder``; returns its card."""
    torch.manual_seed(0)
    m = build_segmenter("small", "dgmn", 3, channels=16, backbone_cfg={"width": 16}, dilations=(1, 2), groups=4)
    c = card(name=name, params=sum(p.numel() for p in m.parameters()))
    save_model(m.eval(), folder / name, c)
    return json.loads((folder / f"{name}.json").read_text())


def edit_card(change):
    """A case that writes a good checkpoint and then changes its card (``change(card)`` edits it in place)."""
    def make(folder, name):
        c = good(folder, name)
        change(c)
        (folder / f"{name}.json").write_text(json.dumps(c))
    return make


def card_text(text_of):
    """A case whose card file is ``text_of(good card)`` (raw text: oversized or deeply nested)."""
    def make(folder, name):
        (folder / f"{name}.json").write_text(text_of(good(folder, name)))
    return make


def tensors(change):
    """A case whose tensor file is ``change(state dict)`` saved with safetensors (the card stays good)."""
    def make(folder, name):
        good(folder, name)
        from safetensors.torch import load_file

        save_file(change(load_file(str(folder / f"{name}.safetensors"))), str(folder / f"{name}.safetensors"))
    return make


def raw_tensors(change):
    """A case whose tensor file's bytes are ``change(header dict, header length, data bytes)`` (a forged header)."""
    def make(folder, name):
        good(folder, name)
        p = folder / f"{name}.safetensors"
        raw = p.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        p.write_bytes(change(json.loads(raw[8:8 + n]), n, raw[8 + n:]))
    return make


def forged(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + data


def setter(path, value):
    """change(card): set the dotted ``path`` (list indices as ints) to ``value``."""
    def change(c):
        *keys, last = path
        for k in keys:
            c = c[k]
        c[last] = value
    return change


def arch(**over):
    return lambda c: c["architecture"].update(over)


def classes(names):
    def change(c):
        c["classes"] = names
        c["palette"] = [[1, 2, 3]] * len(names)
        c["architecture"]["num_classes"] = len(names)
    return change


def nested(depth):
    return lambda c: json.dumps(c)[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"


def reshaped(state):
    """The same tensor names and the same number of values, another architecture's shapes (classifier K×C → C×K)."""
    w = state["classifier.weight"]
    state["classifier.weight"] = w.reshape(w.shape[1], w.shape[0], 1, 1).contiguous()
    return state


# name: (write the case into a folder, the message it is refused with — None: it loads, and is shown as text)
CORPUS = {
    "card-over-1mb": (edit_card(setter(["notes"], "x" * MAX_CARD_BYTES)), r"larger than 1,000,000 bytes \(1 MB\), the most a card may be"),
    "card-50mb": (card_text(lambda c: json.dumps(dict(c, notes="x" * 50_000_000))), r"larger than 1,000,000 bytes"),
    "nested-33": (card_text(nested(33)), r"nests JSON 34 levels deep; a card may nest at most 32 levels"),
    "nested-100000": (card_text(nested(100_000)), r"nests JSON 100001 levels deep; a card may nest at most 32"),
    "huge-integer": (card_text(lambda c: json.dumps(c).replace('"channels": 16', '"channels": ' + "9" * 5000)), r"not valid JSON"),
    "std-zero": (edit_card(setter(["normalization", "std"], [0.2, 0, 0.2])), r"normalization\.std must be 3 finite numbers > 0"),
    "std-negative": (edit_card(setter(["normalization", "std"], [0.2, -1, 0.2])), r"normalization\.std must be 3 finite numbers > 0"),
    "std-nan": (card_text(lambda c: json.dumps(c).replace('"std": [0.2, 0.2, 0.2]', '"std": [0.2, NaN, 0.2]')),
                r"normalization\.std must be 3 finite numbers"),
    "std-infinite": (card_text(lambda c: json.dumps(c).replace('"std": [0.2, 0.2, 0.2]', '"std": [Infinity, 0.2, 0.2]')),
                     r"normalization\.std must be 3 finite numbers"),
    "std-text": (edit_card(setter(["normalization", "std"], ["0.2", 0.2, 0.2])), r"normalization\.std must be 3 finite numbers"),
    "mean-two": (edit_card(setter(["normalization", "mean"], [0.5, 0.5])), r"normalization\.mean must be 3 finite numbers"),
    "mean-four": (edit_card(setter(["normalization", "mean"], [0.5] * 4)), r"normalization\.mean must be 3 finite numbers"),
    "normalization-list": (edit_card(setter(["normalization"], [0.5, 0.2])), r"normalization must be an object"),
    "palette-256": (edit_card(setter(["palette", 1], [256, 0, 0])), r"palette\[1\] must be 3 integers in 0–255"),
    "palette-negative": (edit_card(setter(["palette", 0], [0, -1, 0])), r"palette\[0\] must be 3 integers in 0–255"),
    "palette-float": (edit_card(setter(["palette", 2], [0.5, 0, 0])), r"palette\[2\] must be 3 integers in 0–255"),
    "palette-two": (edit_card(setter(["palette", 2], [0, 0])), r"palette\[2\] must be 3 integers in 0–255"),
    "palette-text": (edit_card(setter(["palette", 0], "red")), r"palette\[0\] must be 3 integers in 0–255"),
    "class-empty": (edit_card(setter(["classes", 1], "")), r"classes\[1\] must be a non-empty string of at most 64 characters"),
    "class-65-chars": (edit_card(setter(["classes", 0], "c" * 65)), r"classes\[0\] must be a non-empty string of at most 64 characters"),
    "class-number": (edit_card(setter(["classes", 2], 7)), r"classes\[2\] must be a non-empty string"),
    "class-twice": (edit_card(setter(["classes", 2], "a")), r"classes must name every class once, got 'a' more than once"),
    "classes-256": (edit_card(classes([f"c{i}" for i in range(256)])), r"architecture\.num_classes must be an integer in 1–255"),
    "dilations-65": (edit_card(lambda c: c["architecture"]["context_cfg"].update(dilations=[1] * 65)),
                     r"architecture\.context_cfg\.dilations may list at most 64 entries, got 65;"),
    "name-long": (edit_card(setter(["name"], "n" * 129)), r"name must be a non-empty string of at most 128 characters"),
    "dataset-text": (edit_card(setter(["dataset"], "context-scenes")), r"dataset must be a JSON object"),
    "dataset-name-list": (edit_card(setter(["dataset"], {"name": ["x"]})), r"dataset\.name must be a string"),
    "command-number": (edit_card(setter(["training"], {"command": 5})), r"training\.command must be a string"),
    "params-lie": (edit_card(setter(["params"], 5)), r"params says 5 parameters but its architecture has"),
    "channels-1e6": (edit_card(arch(channels=10**6, backbone_cfg={"width": 10**6})),
                     r"does not match its model card.*wrong shape.*the card's architecture has \d{1,3}(,\d{3}){4,} parameters"),
    "channels-wider": (edit_card(arch(channels=32)), r"does not match its model card.*wrong shape.*parameters and buffers"),
    "kernel-1e9": (edit_card(lambda c: c["architecture"]["context_cfg"].update(kernel_size=10**9 + 1)), r"cannot be built"),
    "unknown-option": (edit_card(lambda c: c["architecture"]["context_cfg"].update(explode=True)), r"cannot be built.*explode"),
    "other-architecture-same-size": (tensors(reshaped), r"does not match its model card.*1 tensors with the wrong shape \(e\.g\. "
                                                        r"classifier\.weight: \(16, 3, 1, 1\) in the file, \(3, 16, 1, 1\)"),
    "renamed-tensors": (tensors(lambda s: {"model." + k: v for k, v in s.items()}), r"tensors missing.*unexpected tensors"),
    "int-weights": (tensors(lambda s: dict(s, **{"classifier.bias": s["classifier.bias"].to(torch.int32)})),
                    r"tensor classifier\.bias has dtype torch\.int32, expected torch\.float32"),
    "header-longer-than-file": (raw_tensors(lambda h, n, data: (n + 10**6).to_bytes(8, "little") + json.dumps(h).encode() + data),
                                r"header claims \d[\d,]* bytes but the whole file holds"),
    "header-over-100mb": (raw_tensors(lambda h, n, data: (200_000_000).to_bytes(8, "little") + b"{" + b" " * 64),
                          r"header claims 200,000,000 bytes; a safetensors header may be at most 100,000,000 bytes"),
    "header-1tb": (raw_tensors(lambda h, n, data: (2**40).to_bytes(8, "little")), r"may be at most 100,000,000 bytes"),
    "header-lies-about-shape": (raw_tensors(lambda h, n, data: forged(
        {**h, "classifier.weight": dict(h["classifier.weight"], shape=[100_000, 100_000, 1, 1])}, data)),
        r"not a readable safetensors file.*invalid shape"),
    "header-lies-about-offsets": (raw_tensors(lambda h, n, data: forged(
        {**h, "classifier.weight": dict(h["classifier.weight"], shape=[10**6, 10**6], data_offsets=[0, 4 * 10**12])}, data)),
        r"not a readable safetensors file"),
    "empty-tensor-file": (raw_tensors(lambda h, n, data: b""), r"0 bytes, less than the 8-byte header length"),
    "markup": (edit_card(lambda c: c.update(
        classes=[MARKUP, "<b>bold</b> & %{x}", "**star** [link](http://x) `code` | $x$"], name=MARKUP,
        dataset={"name": MARKUP}, training={"command": f"python -m dgmn.train {MARKUP}"})), None),
}


def write_case(case: str, folder: Path, name: str) -> str | None:
    """Write hostile checkpoint ``case`` of :data:`CORPUS` as ``name`` into ``folder``; the message expected."""
    make, message = CORPUS[case]
    make(folder, name)
    return message


@pytest.mark.parametrize("case", list(CORPUS))
def test_hostile_checkpoint_is_refused_with_a_message(tmp_path, case):
    message = write_case(case, tmp_path, "bad")
    t0 = time.perf_counter()
    if message is None:
        model = load_model("bad", directory=tmp_path)
        assert model.card["classes"][0] == MARKUP  # kept verbatim: escaped where it is shown, not here
        return
    with pytest.raises(CheckpointError, match=message) as exc:
        load_model("bad", directory=tmp_path)
    assert time.perf_counter() - t0 < 5  # bounded (the subprocess test below measures the big ones tightly)
    with pytest.raises(CheckpointError):  # the app's model table runs the same checks without loading
        check_checkpoint("bad", tmp_path)
    assert len(str(exc.value)) < 2000  # a megabyte field is not echoed back


def test_shipped_checkpoints_pass_every_check():
    for name in ("dgmn-full", "fcn", "fcn-nonlocal", "fcn-gpool", "dgmn-da", "dgmn-da-dw"):
        checked = check_checkpoint(name, ROOT / "checkpoints")
        assert checked.card["params"] == sum(math.prod(s) for k, (_, s) in checked.header.items()
                                             if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        assert json_depth((ROOT / "checkpoints" / f"{name}.json").read_text()) <= 6


def test_depth_is_counted_outside_strings():
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth('{"a": "quote \\" [[[["}') == 1
    assert json_depth("[]") == 1 and json_depth("3") == 0


MEASURE = """
import json, sys, time
from dgmn.models import CheckpointError, load_model

def status(key):  # kB → MB, from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

before, t0 = status("VmRSS"), time.perf_counter()
try:
    load_model(sys.argv[1])
    outcome = "loaded"
except CheckpointError as exc:
    outcome = str(exc)
print(json.dumps({"seconds": time.perf_counter() - t0, "extra_mb": status("VmHWM") - before, "outcome": outcome}))
"""


def measured_load(path: Path) -> dict:
    """load_model(path) in a fresh process (everything imported first): seconds, and the peak resident memory
    during the call above the resident memory before it (VmHWM − VmRSS: an upper bound on the extra memory)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["channels-1e6", "card-50mb", "nested-100000", "header-1tb", "header-lies-about-offsets"])
def test_refused_within_2_s_and_300_mb(tmp_path, case):
    message = write_case(case, tmp_path, "bad")
    got = measured_load(tmp_path / "bad.safetensors")
    print(f"{case}: refused in {got['seconds'] * 1e3:.1f} ms, {got['extra_mb']:.1f} MB extra resident memory")
    assert got["outcome"] != "loaded" and re.search(message, got["outcome"], re.S)
    assert got["seconds"] < 2 and got["extra_mb"] < 300


def test_the_measurement_sees_a_real_load(tmp_path):
    """The harness above is not blind: loading a model with ~27 MB of weights shows up in its figures."""
    torch.manual_seed(0)
    m = build_segmenter("small", "none", 3, channels=512, backbone_cfg={"width": 512})
    save_model(m, tmp_path / "big", dict(card(name="big"), architecture=m.config.to_architecture()))
    got = measured_load(tmp_path / "big.safetensors")
    weights_mb = (tmp_path / "big.safetensors").stat().st_size / 2**20
    assert got["outcome"] == "loaded" and got["extra_mb"] > weights_mb


def test_safetensors_guarantees_we_rely_on(tmp_path):
    """What the safetensors library itself refuses, before our own checks (which give the clearer messages)."""
    from safetensors import SafetensorError, safe_open

    good(tmp_path, "ok")
    raw = (tmp_path / "ok.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    cases = {
        "header too large": (200_000_000).to_bytes(8, "little") + raw[8:],
        "invalid header length": (len(raw) + 100).to_bytes(8, "little") + raw[8:],
        "invalid shape, data type, or offset": forged({**header, "classifier.bias": dict(header["classifier.bias"], shape=[10**9])}, data),
        "incomplete metadata": forged(header, data + b"\0" * 64),
    }
    for message, content in cases.items():
        p = tmp_path / "forged.safetensors"
        p.write_bytes(content)
        with pytest.raises(SafetensorError, match=message):
            with safe_open(str(p), "pt") as f:
                [f.get_slice(k).get_shape() for k in f.keys()]
    # and the header is read without the data: shapes of a file whose data is never touched
    assert read_header(tmp_path / "ok.safetensors")["classifier.weight"] == ("F32", (3, 16, 1, 1))


def test_markup_in_a_card_is_kept_as_data_and_shown_as_text(tmp_path):
    """Every displayed card string with HTML/script in it: the model-card table, an HTML report and a figure."""
    from dgmn.inspect.explorer import Explorer
    from dgmn.inspect.model_cards import model_cards_markdown
    from dgmn.viz import probability_figure, report_html, segmentation_figure

    write_case("markup", tmp_path, MARKUP)  # the file name (the model's name in the app) is markup too
    write_case("class-65-chars", tmp_path, "long")
    c = json.loads((tmp_path / "long.json").read_text())
    c["classes"][0] = MARKUP * 3  # 84 characters: refused, and its repr is in the table's problem text
    (tmp_path / "long.json").write_text(json.dumps(c))
    md = model_cards_markdown(tmp_path)
    assert f"| `{MARKUP}` |" in md  # the model name as a code span: shown verbatim, never parsed as Markdown or HTML
    text = re.sub(r"(`+)(.+?)\1", "", md)  # everything outside code spans
    assert "<" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text  # the refused card's class, in its problem

    ex = Explorer(tmp_path)
    image = np.full((40, 48, 3), 120, np.uint8)
    analysis = ex.analyse(image, [MARKUP])
    answer = ex.inspect(analysis, 10, 10, [MARKUP])
    card = ex.card(MARKUP)
    html = report_html(image, answer, (10, 10), {MARKUP: analysis.results[MARKUP].prediction}, {MARKUP: card}, title=MARKUP)
    assert not shows_markup(html)
    assert f"<h2>&lt;img src=x onerror=alert(1)&gt;: predicted <b>" in html

    label = np.arange(40 * 48).reshape(40, 48) % 3
    figures = [segmentation_figure(image, label, card["classes"], card["palette"], title=f"{MARKUP}: segmentation"),
               probability_figure(dict(zip(card["classes"], [0.5, 0.3, 0.2])), title=MARKUP)]
    for fig in figures:
        strings = list(_strings(json.loads(fig.to_json())))
        assert not any("<img" in s or "<b>" in s or "%{x}" in s for s in strings)
        assert any("&lt;img src=x onerror=alert(1)&gt;" in s for s in strings)
        assert any("&lt;b&gt;bold&lt;/b&gt; &amp; &#37;{x}" in s for s in strings)


def shows_markup(html: str) -> bool:
    """Whether an HTML report shows the markup case's tags unescaped: in the page itself or in the plotly figures'
    JSON inside it (plotly writes < > & there as unicode escapes, which protect the script tag but not plotly's
    own rendering of the strings)."""
    decoded = html.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")
    return "<img src=x onerror" in decoded or "<b>bold" in decoded


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
