"""Caches bounded by bytes (issue 12): LRUCache's byte budget, Analysis.nbytes, the endpoints' DGMN_CACHE_MB."""
import cv2
import numpy as np
import pytest

from dgmn.data import ContextScenes
from dgmn.inspect.endpoints import API_CACHE_MB, Endpoints, cache_budget_mb
from dgmn.inspect.explorer import Explorer, LRUCache
from dgmn.inspect.inspector import DGMNRecord, NonLocalRecord

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]


def test_lru_cache_evicts_the_least_recently_used_to_stay_within_its_bytes():
    cache = LRUCache(max_items=10, max_bytes=100, size=len)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", b"x" * 40)  # 120 bytes > 100: "b" goes
    assert "b" not in cache and "a" in cache and "c" in cache and cache.nbytes == 80
    cache.put("a", b"x" * 90)  # "a" grew: measured again, "c" goes
    assert list(cache._d) == ["a"] and cache.nbytes == 90
    cache.put("huge", b"x" * 101)  # larger than the whole budget: not kept, the bound holds
    assert "huge" not in cache and cache.nbytes <= 100
    counted = LRUCache(max_items=2)  # without a byte budget: entries only, as before
    for k in "xyz":
        counted.put(k, k)
    assert len(counted) == 2 and counted.get("x") is None and counted.nbytes == 0
    with pytest.raises(ValueError, match="needs size"):
        LRUCache(max_bytes=10)


def records_bytes(records) -> int:
    """The memory the records keep, gathered by hand from their structure: each tensor's whole storage (a slice of
    a larger output keeps all of it), each storage once."""
    if not records:
        return 0
    tensors = []
    for rec in records.values():
        if isinstance(rec, DGMNRecord):
            tensors += [t for it in rec.iterations for g in it for t in (g.offset, g.affinity, g.filters, g.weight) if t is not None]
        else:
            assert isinstance(rec, NonLocalRecord)
            tensors += [rec.theta, rec.phi]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    assert sum(storages.values()) >= sum(t.numel() * t.element_size() for t in tensors)
    return sum(storages.values())


def test_analysis_nbytes_counts_image_predictions_logits_and_records(tiny_checkpoints):
    ex = Explorer(tiny_checkpoints)
    scene = ContextScenes(seed=5, size=(96, 160)).scene(0)
    a = ex.analyse(scene.image, ["fcn"], scene.label)
    fcn = 96 * 160 * 3 + scene.label.nbytes + 96 * 160 * (1 + 8 * 4)  # image, truth; prediction uint8, 8 logits float32
    assert a.nbytes() == fcn
    ex.analyse(scene.image, NAMES, analysis=a)
    want = fcn + sum(96 * 160 * (1 + 8 * 4) + records_bytes(a.results[n].inspector.records) for n in NAMES[:2])
    assert a.nbytes() == want and records_bytes(a.results["dgmn-full"].inspector.records) > 0
    a.derived["extra"] = np.zeros(1000, np.float32)  # results derived from the analysis count too
    assert a.nbytes() == want + 4000


def test_endpoints_cache_keeps_within_its_budget(tiny_checkpoints, tmp_path, monkeypatch):
    paths = []
    for seed in range(3):
        p = tmp_path / f"scene{seed}.png"
        cv2.imwrite(str(p), ContextScenes(seed=seed, size=(96, 160)).scene(0).image[..., ::-1])
        paths.append(str(p))
    one = Endpoints(Explorer(tiny_checkpoints)).analysis(paths[0], NAMES)[0].nbytes()
    ep = Endpoints(Explorer(tiny_checkpoints), cache_mb=1.5 * one / 2**20)  # room for one analysis, not two
    for p in paths:
        ep.inspect(p, 10, 10, NAMES)
        assert len(ep.cache) == 1 and 0 < ep.cache.nbytes <= ep.cache_mb * 2**20
    assert ep.inspect(paths[-1], 10, 10, NAMES)["fcn"]["class"]  # the kept one still answers
    monkeypatch.setenv("DGMN_CACHE_MB", "64")
    assert Endpoints(Explorer(tiny_checkpoints)).cache.max_bytes == 64 * 2**20
    monkeypatch.delenv("DGMN_CACHE_MB")
    assert cache_budget_mb() == API_CACHE_MB <= 1024 and cache_budget_mb(0) == 0
    for bad in ("lots", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match=r"DGMN_CACHE_MB .* must be a number ≥ 0, got"):
            cache_budget_mb(bad)


def test_the_load_test_tells_sessions_apart(tiny_checkpoints, tmp_path):
    """dgmn.bench load's comparison would notice an answer computed on another session's image."""
    from dgmn.bench.server import fingerprint, same_what_if

    ep = Endpoints(Explorer(tiny_checkpoints))
    paths = []
    for seed in (500, 501):
        p = tmp_path / f"s{seed}.png"
        cv2.imwrite(str(p), np.ascontiguousarray(ContextScenes(seed=seed, size=(128, 256)).scene(0).image[..., ::-1]))
        paths.append(str(p))
    edits = [{"op": "drop_rate", "rate": 1}]
    own = [ep.what_if(p, 64, 128, "dgmn-full", edits, "pixel") for p in paths]
    assert same_what_if(own[0], ep.what_if(paths[0], 64, 128, "dgmn-full", edits, "pixel"))
    assert not same_what_if(own[1], own[0])
    assert fingerprint(ep.inspect(paths[0], 64, 128, NAMES)) != fingerprint(ep.inspect(paths[1], 64, 128, NAMES))


def test_freed_memory_is_handed_back_at_most_every_so_often():
    from dgmn.inspect.endpoints import _malloc_trim, release_freed_memory

    assert release_freed_memory(every=0) == (_malloc_trim() is not None)  # glibc (Linux): trimmed
    assert release_freed_memory(every=3600) is False  # not again within the hour


def test_every_analysis_of_the_server_stays_within_its_memory_budget(tiny_checkpoints):
    """Sessions' analyses (held by Gradio's state, one per user) are bounded together: the least recently used are
    shed, and give the same answers when used again (their models run again, transparently)."""
    from dgmn.inspect.explorer import MEMORY_MB

    assert Explorer(tiny_checkpoints).budget.max_mb == MEMORY_MB <= 1024
    probe = Explorer(tiny_checkpoints)
    scenes = [ContextScenes(seed=s, size=(96, 160)).scene(0) for s in range(4)]
    one = probe.analyse(scenes[0].image, NAMES, scenes[0].label).nbytes()
    ex = Explorer(tiny_checkpoints, memory_mb=2.5 * one / 2**20)  # room for two sessions' analyses, not three
    sessions = [ex.analyse(sc.image, NAMES, sc.label) for sc in scenes]  # four users, each holding one
    answers = [ex.inspect(a, 40, 70, NAMES).to_json() for a in sessions]
    assert ex.budget.nbytes <= ex.budget.max_mb * 2**20
    held = sum(a.nbytes() for a in sessions)
    assert held <= ex.budget.max_mb * 2**20  # what the sessions hold in memory, all together
    assert sessions[0].results.shed and not sessions[-1].results.shed  # the least recently used gave theirs back
    again = ex.inspect(sessions[0], 40, 70, NAMES).to_json()  # the first user clicks again
    assert again == answers[0] and not sessions[0].results.shed
    assert set(sessions[0].results) == set(NAMES) and sessions[0].layer_names() == sessions[-1].layer_names()
    assert sum(a.nbytes() for a in sessions) <= ex.budget.max_mb * 2**20
    with pytest.raises(ValueError, match=r"DGMN_MEMORY_MB .* must be a number ≥ 0, got 'x'"):
        Explorer(tiny_checkpoints, memory_mb="x")
