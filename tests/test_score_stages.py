"""`featsel score` as stages (featsel.scoring): what each stage hands the next, and the shape of
results.json that `featsel report`, `featsel validate` and users' scripts read."""

import json
from dataclasses import asdict, fields

import numpy as np
import pytest
import torch

from featsel.diagnostics.criteria import CRITERIA
from featsel.score import ScoreConfig, run_score
from featsel.scoring.featurize import featurize
from featsel.scoring.plan import plan_score
from featsel.scoring.progress import Timer

# 300 digits leave small classes out of the draws: warned once per plan (asserted below)
pytestmark = pytest.mark.filterwarnings("ignore:classes with fewer than 2n")

TINY = dict(data="digits", max_samples=300, n_repeats=1, transport_repeats=1, recipe="paper",
            cache=False, progress=False, taus=(0.05, 0.2))


def test_results_json_keeps_its_structure(tmp_path):
    from featsel.rundir import read_marker

    cfg = ScoreConfig(**TINY, featurizers=["pca:dim=4"], evaluations=["identity"], curve=True)
    with pytest.warns(UserWarning, match="are left out of the draws"):
        res = run_score(cfg, tmp_path / "o")
    on_disk = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res == on_disk
    assert list(res) == ["warnings", "evidence", "title", "created", "settings", "versions",
                         "ranking", "evaluations", "diagnostics", "timings"]
    assert res["title"] == "featsel score: digits (1 candidates + 2 controls)"
    # the machine it ran on: BLAS kernels differ by CPU, so results can differ between machines
    assert res["versions"]["cpu"] and torch.__version__.startswith(res["versions"]["torch"])
    assert res["warnings"] == [] and res["evaluations"] == ["identity"]
    # settings: every ScoreConfig field (as given, but for the resolved ones), then the run's
    s = res["settings"]
    extra = ["manifest", "n_pool", "classes", "classes_left_out", "n_draw_pool",
             "generation_space", "curve_ns"]
    assert list(s) == [f.name for f in fields(ScoreConfig)] + extra
    given = json.loads(json.dumps(asdict(cfg)))
    resolved = {"data", "featurizers", "evaluations", "split", "n", "controls", "coupling_size"}
    assert {k: v for k, v in s.items() if k in given and k not in resolved} == {
        k: v for k, v in given.items() if k not in resolved}
    assert (s["data"], s["split"], s["featurizers"], s["evaluations"]) == (
        "digits", "all", ["pca:dim=4"], ["identity"])
    assert s["controls"] == ["noise:dim=1", "noise:dim=4"] and isinstance(s["n"], int)
    assert s["n_pool"] == 300 and s["coupling_size"] == 150 and s["curve_ns"][-1] == s["n"]
    assert s["n_draw_pool"] == 300 - sum(s["classes_left_out"].values())
    assert read_marker(tmp_path / "o") == {"command": "score", "settings": s}
    # the ranking covers candidates and controls; every criterion has its control check
    scored = ["pca:dim=4", "noise:dim=1", "noise:dim=4"]
    assert sorted(res["ranking"]["order"]) == sorted(scored)
    enabled = [n for n, c in CRITERIA.items() if c.enabled(cfg)]
    assert "flow_fidelity" not in enabled  # costly, off unless asked
    assert cfg.criterion in enabled  # the criterion that ranks is always computed
    assert list(res["ranking"]["validity"]) == enabled
    # diagnostics: one per scored featurizer, in scoring order, each with every section
    assert list(res["diagnostics"]) == scored
    for spec, d in res["diagnostics"].items():
        assert list(d) == ["spec", "map_names", "control", "blocks", "coupling", "criteria",
                           "rank", "stability", "curve", "alignment"], spec
        assert d["spec"] == spec and d["control"] == (spec != "pca:dim=4")
        assert list(d["criteria"]) == enabled
        assert set(d["stability"]["per_tau"]) == {"0.05", "0.2"}
        assert list(d["alignment"]) == ["identity"]
    # timings: every stage in the order it first ran, then the total of them
    t = res["timings"]
    assert list(t) == ["load", "featurizers", "extract", "coupling", *enabled,
                       "delta_ot_curve", "alignment", "report", "total"]
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"))


def test_flow_only_when_asked(tmp_path):
    cfg = ScoreConfig(**TINY, featurizers=["pca:dim=4"], evaluations=[], flow=True,
                      flow_steps=3)
    res = run_score(cfg, tmp_path / "o")
    vals = {c: d["criteria"]["flow_fidelity"] for c, d in res["diagnostics"].items()}
    assert vals["noise:dim=1"]["mean"] == 1.0 and not vals["noise:dim=1"]["moved"]
    assert vals["pca:dim=4"]["moved"] and vals["pca:dim=4"]["steps"] == 3
    assert "flow_fidelity" in res["ranking"]["validity"]
    assert "flow_fidelity" in res["timings"]


def test_inversion_only_when_asked(tmp_path):
    cfg = ScoreConfig(**TINY, featurizers=["pca:dim=4"], evaluations=[], inversion=True,
                      inversion_steps=5)
    res = run_score(cfg, tmp_path / "o")
    vals = {c: d["criteria"]["inversion_share"] for c, d in res["diagnostics"].items()}
    assert vals["noise:dim=1"]["mean"] == 1.0 and not vals["noise:dim=1"]["moved"]
    assert vals["pca:dim=4"]["moved"] and vals["pca:dim=4"]["steps"] == 5
    assert 0 < vals["pca:dim=4"]["mean"] < 1
    assert "inversion_share" in res["ranking"]["validity"] and "inversion_share" in res["timings"]
    assert "flow_fidelity" not in res["timings"]


def test_plan_resolves_the_pool_and_the_draws():
    cfg = ScoreConfig(**TINY, featurizers=["pca:dim=4"], evaluations=[])
    timer = Timer()
    with pytest.warns(UserWarning, match="are left out of the draws"):
        plan = plan_score(cfg, timer)
    assert list(timer.times) == ["load"]
    assert plan.u.shape[0] == len(plan.labels) == 300 and plan.candidates == ["pca:dim=4"]
    classes, counts = np.unique(plan.labels, return_counts=True)
    small = {str(c) for c, k in zip(classes, counts, strict=True) if k < 2 * plan.n}
    assert set(plan.left_out) == small
    drawn = set(plan.labels[plan.draw_index.numpy()].tolist())
    assert {str(c) for c in drawn} == {str(c) for c in classes} - small
    assert not set(plan.coupling_a.tolist()) & set(plan.coupling_b.tolist())
    assert plan.curve_ns[-1] == plan.n
    with pytest.raises(ValueError, match="--featurizers: duplicate"):
        plan_score(ScoreConfig(**TINY, featurizers=["identity", "identity"]), Timer())


def test_featurize_adds_the_controls_once():
    # a control given as a candidate stays one; one that is also an evaluation featurizer
    # is extracted once and still gets its training blocks
    cfg = ScoreConfig(**TINY, featurizers=["pca:dim=4", "noise:dim=1"],
                      evaluations=["noise:dim=4"])
    timer = Timer()
    plan = plan_score(cfg, timer)
    feats = featurize(plan, cfg, timer)
    assert feats.controls == ["noise:dim=1", "noise:dim=4"]
    assert feats.scored == ["pca:dim=4", "noise:dim=1", "noise:dim=4"]
    assert set(feats.blocks) == set(feats.scored)
    assert set(feats.vectors) == set(feats.featurizers) == set(feats.scored)
    for spec in feats.scored:
        assert feats.vectors[spec].shape[0] == 300
        assert all(b.shape[0] == 300 for b in feats.blocks[spec].values())
    no_controls = featurize(plan, ScoreConfig(**{**TINY, "controls": False}), Timer())
    assert no_controls.controls == ["noise:dim=1"]
