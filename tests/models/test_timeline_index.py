"""A timeline's index.json is read with a model card's care (issue 12): size, nesting and snapshot count bounded."""
import json

import pytest

from dgmn.models import CheckpointError
from dgmn.models.timeline import MAX_INDEX_BYTES, MAX_SNAPSHOTS, read_index


def write(tmp_path, text: str):
    folder = tmp_path / "m.timeline"
    folder.mkdir()
    (folder / "index.json").write_text(text)
    return folder


@pytest.mark.parametrize("text, message", [
    (" " * (MAX_INDEX_BYTES + 1), r"larger than 4,000,000 bytes"),
    ("[" * 100 + "]" * 100, r"nests JSON deeper than 32 levels"),
    ('{"snapshots": [' + ",".join(['{"step": 1, "file": "a"}'] * (MAX_SNAPSHOTS + 1)) + "]}", r"lists 201 snapshots; .* at most 200"),
    ('{"snapshots": [{"step": "one", "file": "a"}]}', r"must hold \{\"snapshots\""),
    ("{not json", r"no readable index.json"),
    ("[" + "1" * 5000 + "]", r"no readable index.json"),  # an integer longer than Python will parse
])
def test_a_hostile_index_is_refused_with_its_reason(tmp_path, text, message):
    with pytest.raises(CheckpointError, match=message):
        read_index(write(tmp_path, text))


def test_a_written_index_reads(tmp_path):
    index = {"snapshots": [{"step": 0, "file": "step-000000.safetensors", "layers": {"context": [{"walk": 0.0}]}}]}
    assert read_index(write(tmp_path, json.dumps(index))) == index
