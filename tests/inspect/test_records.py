"""Typed inspection records: their JSON is the endpoint's, and they read like the dicts they replace."""
import json

import numpy as np
import pytest

from dgmn.inspect.explorer import Explorer
from dgmn.inspect.records import NOT_KNOWN, DGMNQuery, GraphNode, Inspection, ModelAnswer, NonLocalQuery
from dgmn.data import ContextScenes

NODE_KEYS = ["rate", "dilation", "node", "uniform", "walk", "sampled", "sampled_image", "inside", "affinity", "filters", "weight", "share"]


def node(**kw):
    base = dict(rate=0, dilation=1, node=4, uniform=[2.0, 3.0], walk=[0.5, -0.25], sampled=[2.5, 2.75], sampled_image=[23.5, 25.5],
                inside=True, affinity=0.25, filters=[1.0, 2.0], weight=[0.1, -0.2], share=1.0, uniform_image=[19.5, 27.5])
    return GraphNode(**{**base, **kw})


def test_graph_node_json_has_the_endpoint_keys_and_not_the_figure_only_ones():
    n = node()
    assert list(n.to_json()) == NODE_KEYS and "uniform_image" not in n.to_json()
    assert n["walk"] == [0.5, -0.25] and "share" in n and "uniform_image" not in n and n.get("nope", 7) == 7
    with pytest.raises(KeyError):
        n["uniform_image"]


def test_queries_and_answers_serialise_as_before():
    q = DGMNQuery([4, 5], [2, 3], 0, 1, 2, 1.0, [1.0], [1], [node()])
    assert list(q.to_json())[:2] == ["type", "feature_size"] and q["type"] == "dgmn" and q.to_json()["nodes"][0]["rate"] == 0
    att = np.full((2, 3), 1 / 6, np.float32)
    nl = NonLocalQuery([2, 3], [0, 1], att, [], 0.9)
    assert nl.to_json()["attention"] == att.tolist() and nl.to_json()["type"] == "nonlocal"
    known = ModelAnswer("boathouse", 5, "house", {"context": q})
    unknown = ModelAnswer("sky", 0)
    assert list(known.to_json()) == ["class", "class_index", "truth", "layers"] and known["class"] == "boathouse"
    assert "truth" not in unknown.to_json() and unknown.truth is NOT_KNOWN and unknown.first_layer() is None
    assert ModelAnswer("sky", 0, None).to_json()["truth"] is None  # truth outside the model's classes
    ins = Inspection(40, 70, "abc", {"a": known, "b": unknown})
    assert set(ins) == {"a", "b"} and ins["a"] is known and json.loads(json.dumps(ins.to_json()))["a"]["layers"]["context"]["groups"] == 2
    assert ins.summary() == "Pixel (x=70, y=40) — a: boathouse, b: sky (truth: house)"


def test_explorer_answers_are_records_whose_json_is_inspect_xy(tiny_checkpoints):
    ex = Explorer(tiny_checkpoints)
    sc = ContextScenes(seed=5, size=(64, 96)).scene(0)
    a = ex.analyse(sc.image, ["dgmn-full", "fcn-nonlocal", "fcn"], sc.label)
    ins = ex.inspect(a, 30, 50, ["dgmn-full", "fcn-nonlocal", "fcn"])
    assert isinstance(ins["dgmn-full"].layers["context"], DGMNQuery) and isinstance(ins["fcn-nonlocal"].layers["context"], NonLocalQuery)
    assert ex.inspect_xy(a, 50, 30, ["dgmn-full", "fcn-nonlocal", "fcn"]) == ins.to_json()  # (x, y) form, same answer
    assert ins["fcn"].truth == ContextScenes().classes[int(sc.label[30, 50])]
