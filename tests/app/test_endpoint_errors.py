"""Bad input for the what_if, timeline and inspect_xy endpoints through gradio_client (issue 12): each gets a
message naming what is wrong, the server keeps serving, and the next valid request works."""
import pytest

from dgmn.app import build_app
from dgmn.inspect.explorer import Explorer

from .conftest import served
from .test_api import image_file  # noqa: F401  (the same 160×96 scene, as a fixture)

# (x, y, model, edits, scope) → the message (a regular expression)
BAD = {
    "unknown op": ((100, 30, "dgmn-full", [{"op": "explode"}], "pixel"), r"unknown op; choose one of drop_rate, drop_node"),
    "op not a string": ((100, 30, "dgmn-full", [{"op": ["drop_rate"]}], "pixel"), r"unknown op"),
    "edits a number": ((100, 30, "dgmn-full", 5, "pixel"), r"give at least one edit"),
    "no edits": ((100, 30, "dgmn-full", [], "pixel"), r"give at least one edit"),
    "edits null": ((100, 30, "dgmn-full", None, "pixel"), r"give at least one edit"),
    "edits broken JSON": ((100, 30, "dgmn-full", "[{", "pixel"), r"the edits are not valid JSON"),
    "missing field": ((100, 30, "dgmn-full", [{"op": "drop_rate"}], "pixel"), r"missing rate; drop_rate takes layer, rate"),
    "unknown field": ((100, 30, "dgmn-full", [{"op": "no_walks", "how": 1}], "pixel"), r"unknown field how"),
    "negative rate": ((100, 30, "dgmn-full", [{"op": "drop_rate", "rate": -1}], "pixel"), r"rate must be an integer ≥ 0"),
    "rate too large": ((100, 30, "dgmn-full", [{"op": "drop_rate", "rate": 10**30}], "pixel"), r"has 2 rate\(s\).*rate must be 0…1"),
    "node too large": ((100, 30, "dgmn-full", [{"op": "drop_node", "rate": 0, "node": 99}], "pixel"), r"node must be 0…8"),
    "unknown layer": ((100, 30, "dgmn-full", [{"op": "no_walks", "layer": "nope"}], "pixel"), r"no context layer 'nope'"),
    "edit for another kind of model": ((100, 30, "fcn-nonlocal", [{"op": "drop_rate", "rate": 0}], "image"), r"needs a DGMN layer"),
    "box outside": ((100, 30, "fcn", [{"op": "occlude", "box": [0, 0, 500, 5], "fill": "mean"}], "pixel"),
                    r"the box must lie inside the 160×96 image"),
    "box not 4 numbers": ((100, 30, "fcn", [{"op": "occlude", "box": "all", "fill": "mean"}], "pixel"), r"box must be \[x0, y0, x1, y1\]"),
    "fill unknown": ((100, 30, "fcn", [{"op": "occlude", "box": [0, 0, 5, 5], "fill": "red"}], "pixel"), r'fill must be "mean" or "blur"'),
    "wrong scope": ((100, 30, "dgmn-full", [{"op": "no_walks"}], "everywhere"), r'scope must be "pixel" or "image", got \'everywhere\''),
    "scope a number": ((100, 30, "dgmn-full", [{"op": "no_walks"}], 5), r'scope must be "pixel" or "image", got 5'),
    "scope a list": ((100, 30, "dgmn-full", [{"op": "no_walks"}], ["pixel"]), r'scope must be "pixel" or "image"'),
    "unknown model": ((100, 30, "nope", [{"op": "no_walks"}], "pixel"), r"no model named 'nope'; choose one of: dgmn-full, fcn, fcn-nonlocal"),
    "model a path": ((100, 30, "../fcn", [{"op": "no_walks"}], "pixel"), r"'\.\./fcn' is not a model name"),
    "model a list": ((100, 30, ["fcn"], [{"op": "no_walks"}], "pixel"), r"model must be one model name \(a string\), got \['fcn'\]"),
    "model a number": ((100, 30, 5, [{"op": "no_walks"}], "pixel"), r"model must be one model name \(a string\), got 5"),
    "model null": ((100, 30, None, [{"op": "no_walks"}], "pixel"), r"model must be one model name \(a string\), got None"),
    "pixel outside": ((1000, 30, "fcn", [{"op": "no_context"}], "pixel"), r"outside the 160×96 image"),
    "pixel missing": ((None, 30, "fcn", [{"op": "no_context"}], "pixel"), r"x and y are required"),
    "pixel not a number": (("left", 30, "fcn", [{"op": "no_context"}], "pixel"), r"x and y must be numbers .*got x='left', y=30"),
    "pixel not finite": (("nan", 30, "fcn", [{"op": "no_context"}], "pixel"), r"x and y must be numbers"),
}

# timeline: (x, y, model) → the message; dgmn-full has a timeline in these checkpoints, fcn has none
BAD_TIMELINE = {
    "model without a timeline": ((70, 40, "fcn"), r"model 'fcn' has no training timeline"),
    "unknown model": ((70, 40, "nope"), r"no model named 'nope'"),
    "model a list": ((70, 40, ["dgmn-full"]), r"model must be one model name \(a string\)"),
    "pixel outside": ((70, 4000, "dgmn-full"), r"outside the 160×96 image"),
    "pixel not a number": ((70, [4], "dgmn-full"), r"x and y must be numbers"),
    "pixel missing": ((70, None, "dgmn-full"), r"x and y are required"),
}

BAD_INSPECT = {
    "pixel not a number": (("70px", 40), r"x and y must be numbers .*got x='70px'"),
    "pixel huge": ((1e300, 40), r"outside the 160×96 image"),
    "pixel negative": ((-1, 40), r"outside the 160×96 image"),
}


@pytest.fixture(scope="module")
def client(timeline_checkpoints):
    from gradio_client import Client

    with served(build_app(Explorer(timeline_checkpoints))) as url:
        yield Client(url, verbose=False)


def valid(client, image_file) -> dict:
    from gradio_client import handle_file

    return client.predict(handle_file(str(image_file)), 100, 30, "dgmn-full", [{"op": "drop_rate", "rate": 1}], "pixel", api_name="/what_if")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_what_if_request_gets_a_message_and_the_next_valid_one_works(client, image_file, case):
    from gradio_client import handle_file

    (x, y, model, edits, scope), message = BAD[case]
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(image_file)), x, y, model, edits, scope, api_name="/what_if")
    ok = valid(client, image_file)
    assert ok["model"] == "dgmn-full" and abs(sum(ok["after"]["probabilities"].values()) - 1) < 1e-6


@pytest.mark.parametrize("case", list(BAD_TIMELINE))
def test_bad_timeline_request_gets_a_message_and_the_next_valid_one_works(client, image_file, case):
    from gradio_client import handle_file

    (x, y, model), message = BAD_TIMELINE[case]
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(image_file)), x, y, model, api_name="/timeline")
    ok = client.predict(handle_file(str(image_file)), 70, 40, "dgmn-full", api_name="/timeline")
    assert [r["step"] for r in ok] == [0, 10]


@pytest.mark.parametrize("case", list(BAD_INSPECT))
def test_bad_inspect_request_gets_a_message_and_the_next_valid_one_works(client, image_file, case):
    from gradio_client import handle_file

    (x, y), message = BAD_INSPECT[case]
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(image_file)), x, y, ["fcn"], api_name="/inspect_xy")
    assert client.predict(handle_file(str(image_file)), 70, 40, ["fcn"], api_name="/inspect_xy")["fcn"]["class"]


def test_the_valid_answer_does_not_depend_on_the_bad_requests_before_it(client, image_file, timeline_checkpoints):
    """The endpoint's answer after every bad request equals the one computed locally, with nothing served."""
    from dgmn.inspect.endpoints import Endpoints

    local = Endpoints(Explorer(timeline_checkpoints)).what_if(str(image_file), 30, 100, "dgmn-full", [{"op": "drop_rate", "rate": 1}], "pixel")
    served_answer = valid(client, image_file)
    for k in ("before", "after"):
        assert served_answer[k]["class"] == local[k]["class"]
        assert served_answer[k]["probabilities"] == pytest.approx(local[k]["probabilities"], abs=1e-6)


def test_a_users_mistake_leaves_no_traceback_in_the_server_log(client, image_file, capfd):
    """The caller gets the message; the console (README: the address and server-side errors only) gets nothing."""
    from gradio_client import handle_file

    capfd.readouterr()
    for call in (lambda: client.predict(handle_file(str(image_file)), 1000, 30, ["fcn"], api_name="/inspect_xy"),
                 lambda: client.predict(handle_file(str(image_file)), ["nope"], api_name="/segment"),
                 lambda: client.predict(handle_file(str(image_file)), 100, 30, "fcn", [{"op": "explode"}], "pixel",
                                        api_name="/what_if")):
        with pytest.raises(Exception):
            call()
    logged = capfd.readouterr()
    assert "Traceback" not in logged.err + logged.out
