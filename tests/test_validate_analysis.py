"""featsel.confirmation: the analysis of `featsel validate` on hand-computed examples."""

import math

import pytest
from scipy.stats import kendalltau, spearmanr

from featsel.confirmation import (
    bootstrap_agreement,
    compare_predictors,
    exclude_metrics,
    hacked_pairs,
    mean_fd_over_seeds,
    mean_fd_rank_excluding,
    rank_agreement,
    seed_split_agreement,
)


def test_mean_fd_rank_hand_example():
    fd = {"a": {"m1": 1.0, "m2": 5.0}, "b": {"m1": 2.0, "m2": 3.0}, "c": {"m1": 3.0, "m2": 4.0}}
    r = mean_fd_rank_excluding(fd)
    # m1: a 1, b 2, c 3; m2: b 1, c 2, a 3
    assert r["ranks"] == {"m1": {"a": 1.0, "b": 2.0, "c": 3.0},
                          "m2": {"a": 3.0, "b": 1.0, "c": 2.0}}
    assert r["mean_rank"] == {"a": 2.0, "b": 1.5, "c": 2.5}


def test_mean_fd_rank_excludes_hacked_pair_and_shares_ties():
    fd = {"a": {"m1": 1.0, "m2": 5.0}, "b": {"m1": 2.0, "m2": 3.0}, "c": {"m1": 3.0, "m2": 4.0}}
    r = mean_fd_rank_excluding(fd, exclude=[("a", "m2")])
    assert r["ranks"]["m2"] == {"b": 1.0, "c": 2.0}
    assert r["mean_rank"] == {"a": 1.0, "b": 1.5, "c": 2.5}
    assert r["n_metrics"] == {"a": 1, "b": 2, "c": 2}
    tied = mean_fd_rank_excluding({"a": {"m": 1.0}, "b": {"m": 1.0}, "c": {"m": 2.0}})
    assert tied["mean_rank"] == {"a": 1.5, "b": 1.5, "c": 3.0}
    gone = mean_fd_rank_excluding({"a": {"m": 1.0}, "b": {"m": 2.0}}, exclude=[("a", "m")])
    assert math.isnan(gone["mean_rank"]["a"]) and gone["mean_rank"]["b"] == 1.0


def test_mean_fd_rank_bad_input():
    with pytest.raises(ValueError, match="no FD for metric"):
        mean_fd_rank_excluding({"a": {"m1": 1.0}, "b": {"m2": 1.0}})
    with pytest.raises(ValueError, match="at least one candidate"):
        mean_fd_rank_excluding({})


def test_mean_fd_over_seeds():
    assert mean_fd_over_seeds({"a": {"m": [1.0, 2.0, float("nan")]}}) == {"a": {"m": 1.5}}
    with pytest.raises(ValueError, match="no finite FD"):
        mean_fd_over_seeds({"a": {"m": [float("nan")]}})


def test_hacked_pairs_same_spec_and_flags():
    flags = [{"candidate": "id", "evaluation": "inc"}, {"candidate": "zz", "evaluation": "inc"}]
    assert hacked_pairs(["pca", "id"], ["pca", "inc"], flags) == {("pca", "pca"), ("id", "inc")}


def test_rank_agreement_hand_values():
    out = {"a": 1.0, "b": 2.0, "c": 3.0}
    r = rank_agreement({"a": 0.1, "b": 0.2, "c": 0.3}, out)
    assert r["spearman"] == pytest.approx(1.0) and r["kendall"] == pytest.approx(1.0)
    r = rank_agreement({"a": 0.3, "b": 0.2, "c": 0.1}, out)
    assert r["spearman"] == pytest.approx(-1.0) and r["kendall"] == pytest.approx(-1.0)
    # predictor ranks (1, 3, 2): rho = 1 - 6 * 2 / 24 = 0.5; Kendall (2 - 1) / 3
    r = rank_agreement({"a": 0.1, "b": 0.3, "c": 0.2}, out)
    assert r["spearman"] == pytest.approx(0.5, abs=1e-12)
    assert r["kendall"] == pytest.approx(1 / 3, abs=1e-12)
    # higher-is-better predictors are flipped: +1 = predicted
    r = rank_agreement({"a": 3.0, "b": 2.0, "c": 1.0}, out, lower_is_better=False)
    assert r["spearman"] == pytest.approx(1.0)
    assert math.isnan(rank_agreement({"a": 0.1, "b": 0.2}, out)["spearman"])
    # permutation p: of the 6 orders of 3, rho = 1 (1), 0.5 (2), -0.5 (2), -1 (1)
    assert rank_agreement({"a": 0.1, "b": 0.2, "c": 0.3}, out)["spearman_p"] == pytest.approx(1 / 6)
    assert rank_agreement({"a": 0.1, "b": 0.3, "c": 0.2}, out)["spearman_p"] == pytest.approx(0.5)
    assert rank_agreement({"a": 0.3, "b": 0.2, "c": 0.1}, out)["spearman_p"] == pytest.approx(1.0)
    assert math.isnan(rank_agreement({"a": 1.0, "b": 1.0, "c": 1.0}, out)["kendall"])


def test_rank_agreement_matches_scipy_on_random_values():
    import numpy as np

    rng = np.random.default_rng(0)
    p, o = rng.normal(size=7), rng.normal(size=7)
    names = [f"c{i}" for i in range(7)]
    r = rank_agreement(dict(zip(names, p)), dict(zip(names, o)))
    assert r["spearman"] == pytest.approx(spearmanr(p, o).statistic, abs=1e-12)
    assert r["kendall"] == pytest.approx(kendalltau(p, o).statistic, abs=1e-12)


def test_permutation_p_exact_and_monte_carlo():
    import numpy as np

    from featsel.confirmation import spearman_permutation_p

    x = np.arange(4.0)
    assert spearman_permutation_p(x, x) == pytest.approx(1 / 24)
    # 10 candidates: Monte Carlo; a perfect order is essentially never matched by chance
    y = np.arange(10.0)
    assert spearman_permutation_p(y, y) < 1e-3
    assert spearman_permutation_p(y, -y) == pytest.approx(1.0)


def test_bootstrap_interval_hand_example():
    # a's seeds (1, 10) resample to means 1 / 5.5 / 10 with probabilities 1/4, 1/2, 1/4,
    # giving outcome orders a<b<c (rho 1), b<a<c (rho 0.5), b<c<a (rho -0.5).
    fd = {"a": {"m": [1.0, 10.0]}, "b": {"m": [5.0, 5.0]}, "c": {"m": [6.0, 6.0]}}
    pred = {"a": 0.1, "b": 0.2, "c": 0.3}
    r = bootstrap_agreement(pred, fd, n_boot=2000, seed=0)
    assert r["spearman"] == pytest.approx(0.5, abs=1e-12)  # point estimate: all seeds
    assert r["spearman_ci"] == pytest.approx([-0.5, 1.0])
    assert r["n_seeds"] == {"a": 2, "b": 2, "c": 2}
    one = bootstrap_agreement(pred, {k: {"m": v["m"][:1]} for k, v in fd.items()}, n_boot=20)
    assert one["spearman_ci"] == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="same non-zero number of seeds"):
        bootstrap_agreement(pred, {"a": {"m": [1.0], "n": [1.0, 2.0]}, "b": {"m": [1.0],
                                                                             "n": [1.0]}})


def test_seed_split_agreement_hand_example():
    # seeds 0 and 1 order a < b < c, seed 2 b < c < a. Splits (k = 1 seed against the other 2):
    # {0} a,b,c vs {1,2} means a 2, b 1.5, c 2.5 -> b,a,c: tau 1/3; {1} the same: 1/3;
    # {2} b,c,a vs {0,1} a,b,c: tau -1/3. Mean 1/9. The predictor a < b < c against the held
    # halves: 1/3, 1/3, 1 -> mean 5/9; reversed (higher is better) -> -5/9.
    fd = {"a": {"m": [1.0, 1.0, 3.0]}, "b": {"m": [2.0, 2.0, 1.0]},
          "c": {"m": [3.0, 3.0, 2.0]}}
    pred = {"a": 1.0, "b": 2.0, "c": 3.0}
    r = seed_split_agreement(fd, predictors={"p": (pred, True), "q": (pred, False)})
    assert r["seeds"] == [1, 2] and r["n_splits"] == 3
    assert r["outcome"]["kendall"] == pytest.approx([1 / 3, 1 / 3, -1 / 3], abs=1e-12)
    assert r["outcome"]["mean_kendall"] == pytest.approx(1 / 9, abs=1e-12)
    assert (r["outcome"]["min_kendall"], r["outcome"]["max_kendall"]) == pytest.approx(
        (-1 / 3, 1 / 3), abs=1e-12)
    assert r["predictors"]["p"]["mean_kendall"] == pytest.approx(5 / 9, abs=1e-12)
    assert r["predictors"]["q"]["mean_kendall"] == pytest.approx(-5 / 9, abs=1e-12)
    # a metric-hacking pair is left out of the halves' ranks: with a's only metric excluded it
    # has no rank, and two ranked candidates give no defined tau
    assert math.isnan(seed_split_agreement(fd, exclude=[("a", "m")])["outcome"]["mean_kendall"])


def test_seed_split_agreement_repeatable_outcome_sampling_and_bad_input():
    # every seed orders a < b < c < d: every split agrees exactly; 6 seeds give C(6, 3) = 20
    # splits, max_splits draws 5 of them
    fd = {c: {"m": [float(i) + 0.1 * s for s in range(6)], "n": [float(i)] * 6}
          for i, c in enumerate("abcd")}
    r = seed_split_agreement(fd)
    assert r["seeds"] == [3, 3] and r["n_splits"] == 20
    assert r["outcome"]["mean_kendall"] == pytest.approx(1.0) and r["predictors"] == {}
    assert seed_split_agreement(fd, max_splits=5)["n_splits"] == 5
    assert seed_split_agreement({c: {"m": v["m"][:1]} for c, v in fd.items()}) is None
    with pytest.raises(ValueError, match="max_splits"):
        seed_split_agreement(fd, max_splits=0)


def test_compare_predictors_picks_the_right_one():
    fd = {"a": {"m": [1.0, 1.1]}, "b": {"m": [2.0, 2.1]}, "c": {"m": [3.0, 3.1]}}
    preds = {"good": ({"a": 0.1, "b": 0.2, "c": 0.3}, True),
             "reversed": ({"a": 0.1, "b": 0.2, "c": 0.3}, False),
             "flat": ({"a": 1.0, "b": 1.0, "c": 1.0}, True)}
    r = compare_predictors(preds, fd, n_boot=50)
    assert r["best"] == "good"
    assert r["per_predictor"]["reversed"]["spearman"] == pytest.approx(-1.0)
    assert math.isnan(r["per_predictor"]["flat"]["spearman"])
    none = compare_predictors({"flat": preds["flat"]}, fd, n_boot=5)
    assert none["best"] is None


HEALTHY = {"variance_ratio": 0.9, "nearest_share_per_class": {"0": 1.0, "1": 0.8}}


def _fake_sweep(tmp_path, fds, flags, cond=None, collapse=None, curves=None, support=None,
                **kw):
    """Eval files for a 3-candidate x 2-seed sweep (hand-chosen FDs) and a score dict.
    fds: unconditional FDs {cand: {space: [per seed]}}; cond: conditional ones (default fds).
    collapse: {(cand, seed): collapse stats} (default HEALTHY for every run). curves:
    {cand: [per seed {step: factor}]}: an eval_curve.json whose point at a step holds the
    final FDs times that factor (none: runs from before the curves)."""
    import json
    from pathlib import Path

    from generation.validate import ValidateConfig, plan_jobs

    cond = fds if cond is None else cond
    collapse = collapse or {}
    cfg = ValidateConfig(featurizers=list(fds), evaluations=["m1", "m2"], seeds=2, budget=5,
                         n_boot=50, **kw)
    names = list(fds)
    jobs = plan_jobs(cfg, list(fds), tmp_path)
    for j in jobs:
        Path(j.run_dir).mkdir(parents=True)
        stats = collapse.get((j.candidate, j.seed), HEALTHY)
        sup = (support or {}).get((j.candidate, j.seed))

        def alphas(f=1.0, j=j, stats=stats, sup=sup):
            return {"1": {m: {"fd": f * fds[j.candidate][m][j.seed],
                              "cond_fd": f * cond[j.candidate][m][j.seed], "collapse": stats,
                              **({"support": sup} if sup else {})}
                          for m in ("m1", "m2")}}

        ev = {"step": 5, "real_reference": {"m1": "generation", "m2": "generation"},
              "alphas": alphas()}
        (Path(j.run_dir) / "eval.json").write_text(json.dumps(ev))
        if curves is not None and j.candidate in curves:
            pts = [{"step": s, "budget": 5, "alphas": alphas(f)}
                   for s, f in sorted(curves[j.candidate][j.seed].items())]
            (Path(j.run_dir) / "eval_curve.json").write_text(json.dumps({"points": pts}))
    delta = {c: 0.1 * (i + 1) for i, c in enumerate(names)}     # a 0.1, b 0.2, c 0.3, ...
    erank = {c: float(i + 1) for i, c in enumerate(names)}      # a 1, b 2, c 3, ...
    score = {"settings": {"data": "toy"}, "ranking": {
        "tau": 0.05, "order": names, "flags": flags,
        "candidates": {c: {"delta": {"0.05": {"mean": delta[c]}}, "effective_rank": erank[c],
                           "alignment": {}} for c in fds}}}
    return cfg, jobs, score


def test_summarize_reports_a_failed_prediction_honestly(tmp_path):
    from generation.validate import summarize

    fds = {"a": {"m1": [3.0, 3.2], "m2": [3.0, 3.1]}, "b": {"m1": [2.0, 2.1], "m2": [2.0, 2.2]},
           "c": {"m1": [1.0, 1.1], "m2": [1.0, 1.3]}}
    flags = [{"candidate": "c", "evaluation": "m2", "reason": "same network as the evaluation"},
             {"candidate": "a", "evaluation": "m1", "reason": "features predict (R^2 = 0.95)"}]
    cfg, jobs, score = _fake_sweep(tmp_path, fds, flags)
    rep = summarize(cfg, ["a", "b", "c"], ["m1", "m2"], jobs, score)
    # (c, m2) excluded; m2 ranks b 1, a 2 -> mean ranks a 2.5, b 1.5, c 1 (cond_fd = fd here)
    assert rep["fd_ranks"]["fd[m2]"] == rep["fd_ranks"]["cond_fd[m2]"] == {"a": 2.0, "b": 1.0}
    assert rep["mean_fd_rank"] == {"a": 2.5, "b": 1.5, "c": 1.0}
    assert [(h["candidate"], h["evaluation"]) for h in rep["metric_hacking"]] == [("c", "m2")]
    assert [(h["candidate"], h["evaluation"]) for h in rep["aligned_not_excluded"]] == [("a",
                                                                                         "m1")]
    assert rep["fd"]["a"]["m1"] == [3.0, 3.2]
    assert rep["correlation"]["spearman"] == pytest.approx(-1.0)
    assert rep["correlation"]["spearman_ci"] == pytest.approx([-1.0, -1.0])
    assert "did NOT predict" in rep["verdict"]
    # the effective rank (higher = better) ordered them right: it predicted best
    assert rep["best_predictor"] == "effective_rank"
    assert rep["predictors"]["effective_rank"]["spearman"] == pytest.approx(1.0)
    assert rep["outcome_order"] == ["c", "b", "a"]
    # both seeds give that order alone: the seed halves agree (+1), the ranking read against
    # the held seed is reversed (-1), and nothing is warned
    rr = rep["repeatability"]
    assert rr["seeds"] == [1, 1] and rr["n_splits"] == 2 and rr["candidates"] == ["a", "b", "c"]
    assert rr["outcome"]["mean_kendall"] == pytest.approx(1.0)
    assert rr["predictors"][rep["predictor"]]["mean_kendall"] == pytest.approx(-1.0)
    assert rr["warning"] == "" and not any("repeatable" in w for w in rep["warnings"])
    # with exclude_aligned, (a, m1) is left out too: m1 ranks b 2, c 1
    cfg2, jobs2, score2 = _fake_sweep(tmp_path / "x", fds, flags, exclude_aligned=True)
    rep2 = summarize(cfg2, ["a", "b", "c"], ["m1", "m2"], jobs2, score2)
    assert rep2["fd_ranks"]["fd[m1]"] == {"b": 2.0, "c": 1.0}
    assert rep2["mean_fd_rank"] == {"a": 2.0, "b": 1.5, "c": 1.0}


def test_summarize_verdict_needs_seeds_and_enough_candidates(tmp_path):
    from generation.validate import summarize

    fds = {c: {"m1": [v, v + 0.1], "m2": [v, v + 0.2]}
           for c, v in zip("abcd", (1.0, 2.0, 3.0, 4.0))}
    cfg, jobs, score = _fake_sweep(tmp_path / "4", fds, [])
    rep = summarize(cfg, list(fds), ["m1", "m2"], jobs, score)
    assert rep["correlation"]["spearman"] == pytest.approx(1.0)
    assert rep["correlation"]["spearman_p"] == pytest.approx(1 / 24)
    assert rep["verdict"].startswith("The Delta_OT ranking predicted the outcome")
    # one seed: no interval, not called a prediction
    cfg.seeds = 1
    rep1 = summarize(cfg, list(fds), ["m1", "m2"], [j for j in jobs if j.seed == 0], score)
    assert "one seed per candidate" in rep1["verdict"]
    # three candidates in perfect agreement: p = 1/6, indistinguishable from chance
    fds3 = {c: fds[c] for c in "abc"}
    cfg3, jobs3, score3 = _fake_sweep(tmp_path / "3", fds3, [])
    rep3 = summarize(cfg3, list(fds3), ["m1", "m2"], jobs3, score3)
    assert rep3["correlation"]["spearman"] == pytest.approx(1.0)
    assert "not distinguishable from chance" in rep3["verdict"]
    # seed 1 reverses seed 0: the halves disagree (-1), a warning says so, the report shows it
    fdr = {c: {"m1": [v, 4.0 - v], "m2": [v, 4.0 - v]} for c, v in zip("abc", (1.0, 2.0, 3.0))}
    cfgr, jobsr, scorer = _fake_sweep(tmp_path / "r", fdr, [])
    repr_ = summarize(cfgr, list(fdr), ["m1", "m2"], jobsr, scorer)
    assert repr_["repeatability"]["outcome"]["mean_kendall"] == pytest.approx(-1.0)
    assert repr_["repeatability"]["warning"] in repr_["warnings"]
    assert "not repeatable across seeds" in repr_["repeatability"]["warning"]
    from reports.validation_html import render_validation_html

    html = render_validation_html(repr_, [], {})
    assert 'id="repeatability"' in html and '<td>-1 [-1, -1]</td>' in html
    assert summarize(cfg, list(fds), ["m1", "m2"], [j for j in jobs if j.seed == 0],
                     score)["repeatability"] is None
    # a trained control is left out: seed 1 reverses a, b, c, and the control, last on every
    # seed, would otherwise lift the halves' agreement from -1 to 0
    fdc = {**fdr, "noise:dim=1": {"m1": [9.0, 9.0], "m2": [9.0, 9.0]}}
    cfgc, jobsc, scorec = _fake_sweep(tmp_path / "c", fdc, [])
    scorec["ranking"]["controls"] = ["noise:dim=1"]
    rc = summarize(cfgc, list(fdc), ["m1", "m2"], jobsc, scorec)["repeatability"]
    assert rc["candidates"] == ["a", "b", "c"]
    assert rc["outcome"]["mean_kendall"] == pytest.approx(-1.0)


def test_exclude_metrics_carries_a_space_to_both_of_its_metrics():
    ms = {"fd[e1]": "e1", "cond_fd[e1]": "e1", "fd[e2]": "e2", "cond_fd[e2]": "e2"}
    assert exclude_metrics({("a", "e1"), ("b", "zz")}, ms) == {("a", "fd[e1]"),
                                                               ("a", "cond_fd[e1]")}


def test_summarize_ranks_conditional_and_unconditional_fd_with_exclusion(tmp_path):
    """Two FD metrics per space; a hacked (candidate, space) pair leaves both of them."""
    from generation.validate import summarize

    def seeds(v):
        return [v, v + 0.01]

    # means: fd m1 a 1 b 2 c 3; cond m1 a 3 b 1 c 2; fd m2 a 2 b 1 (c out); cond m2 a 1 b 2
    fds = {"a": {"m1": seeds(1.0), "m2": seeds(2.0)}, "b": {"m1": seeds(2.0), "m2": seeds(1.0)},
           "c": {"m1": seeds(3.0), "m2": seeds(0.5)}}
    cond = {"a": {"m1": seeds(3.0), "m2": seeds(1.0)}, "b": {"m1": seeds(1.0), "m2": seeds(2.0)},
            "c": {"m1": seeds(2.0), "m2": seeds(0.1)}}
    flags = [{"candidate": "c", "evaluation": "m2", "reason": "same network as the evaluation"}]
    cfg, jobs, score = _fake_sweep(tmp_path, fds, flags, cond=cond)
    rep = summarize(cfg, ["a", "b", "c"], ["m1", "m2"], jobs, score)
    assert rep["fd_ranks"] == {"fd[m1]": {"a": 1.0, "b": 2.0, "c": 3.0},
                               "cond_fd[m1]": {"a": 3.0, "b": 1.0, "c": 2.0},
                               "fd[m2]": {"a": 2.0, "b": 1.0},
                               "cond_fd[m2]": {"a": 1.0, "b": 2.0}}
    # a (1 + 3 + 2 + 1) / 4, b (2 + 1 + 1 + 2) / 4, c (3 + 2) / 2
    assert rep["mean_fd_rank"] == {"a": 1.75, "b": 1.5, "c": 2.5}
    assert rep["outcome_order"] == ["b", "a", "c"]
    assert rep["fd"]["c"]["m2"] == [0.5, 0.51] and rep["cond_fd"]["a"]["m1"] == [3.0, 3.01]
    assert {(m["metric"], m["evaluation"], m["kind"]) for m in rep["fd_metrics"]} == {
        ("fd[m1]", "m1", "fd"), ("cond_fd[m1]", "m1", "cond_fd"),
        ("fd[m2]", "m2", "fd"), ("cond_fd[m2]", "m2", "cond_fd")}
    rows = {r["candidate"]: r for r in rep["table"]}
    assert rows["c"]["n_metrics_ranked"] == 2 and rows["a"]["n_metrics_ranked"] == 4
    assert rows["a"]["cond_fd[m1]"] == pytest.approx(3.005)
    assert rows["a"]["cond_fd_rank[m1]"] == 3.0 and rows["a"]["fd_rank[m1]"] == 1.0
    assert rows["c"]["hacked[m2]"] and rows["c"]["cond_fd_rank[m2]"] is None  # NaN -> null
    # the correlation uses the same mean rank (Delta_OT a < b < c vs outcome b, a, c)
    assert rep["correlation"]["spearman"] == pytest.approx(0.5)


def test_eval_json_without_cond_fd_is_reevaluated(tmp_path, monkeypatch):
    """An eval.json from before the conditional FD: job_status says 'trained' (validate
    evaluates it again) and collect_fd names the fix."""
    import json
    from pathlib import Path

    from generation import validate as v
    from generation.validation import jobs as validation_jobs

    fds = {c: {"m1": [1.0, 2.0], "m2": [1.0, 2.0]} for c in "ab"}
    cfg, jobs, _ = _fake_sweep(tmp_path, fds, [])
    old = {"step": 5, "alphas": {"1": {"m1": {"fd": 1.0}, "m2": {"fd": 1.0}}}}
    (Path(jobs[0].run_dir) / "eval.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="predates the conditional FD"):
        v.collect_fd(jobs, ["m1", "m2"], 1.0)
    monkeypatch.setattr(validation_jobs, "checkpoint_step", lambda run, expect=None: 5)  # trained to budget
    assert v.job_status(jobs[0], 5, ["m1", "m2"], 1.0) == "trained"
    assert v.job_status(jobs[1], 5, ["m1", "m2"], 1.0) == "done"
    # an eval.json from before the ambient real reference is evaluated again too
    ev = json.loads((Path(jobs[1].run_dir) / "eval.json").read_text())
    del ev["real_reference"]
    (Path(jobs[1].run_dir) / "eval.json").write_text(json.dumps(ev))
    assert v.job_status(jobs[1], 5, ["m1", "m2"], 1.0) == "trained"
    # ... and one from before the collapse statistics
    ev = json.loads((Path(jobs[2].run_dir) / "eval.json").read_text())
    del ev["alphas"]["1"]["m2"]["collapse"]
    (Path(jobs[2].run_dir) / "eval.json").write_text(json.dumps(ev))
    assert v.job_status(jobs[2], 5, ["m1", "m2"], 1.0) == "trained"


# --- trustworthy outcomes: collapse statistics, curves, the still-improving rule ------------

def _square(cx, cy):
    """Four points on a 2 x 2 square around (cx, cy): per-dimension sample variance 4/3
    (ddof 1), total variance 8/3."""
    import numpy as np

    return np.array([[cx - 1, cy - 1], [cx + 1, cy - 1], [cx - 1, cy + 1], [cx + 1, cy + 1]],
                    dtype=float)


def test_collapse_statistics_on_hand_built_sets():
    import numpy as np

    from featsel.confirmation import (
        class_coverage,
        collapse_stats,
        nearest_centroid_shares,
        total_variance_ratio,
    )

    centres = [(0, 0), (10, 0), (0, 10), (10, 10)]
    real = np.concatenate([_square(*c) for c in centres])            # (16, 2), 4 classes
    rl = np.repeat(np.arange(4), 4)
    # healthy: the real set itself -> ratio 1 per class, every sample at its own centroid
    h = collapse_stats(real, rl, real, rl)
    assert h["variance_ratio"] == pytest.approx(1.0)
    assert h["nearest_share_per_class"] == {"0": 1.0, "1": 1.0, "2": 1.0, "3": 1.0}
    assert h["coverage"] == 1.0 and h["collapsed"] is False and h["reasons"] == []
    # collapsed: a 0.1 x 0.1 square per class: tv = 4 * 0.05^2 * 2 / 3 = 0.02 / 3, ratio
    # (0.02 / 3) / (8 / 3) = 0.0025 < 0.1, although every class is still covered
    tiny = np.concatenate([_square(*c) * 0 + np.array(c) + 0.05 * (_square(0, 0)) for c in
                           centres])
    tv = total_variance_ratio(tiny, rl, real, rl)
    assert tv["per_class"] == pytest.approx({str(c): 0.0025 for c in range(4)})
    assert tv["variance_ratio"] == pytest.approx(0.0025)
    c = collapse_stats(tiny, rl, real, rl)
    assert c["collapsed"] is True and c["coverage"] == 1.0
    assert len(c["reasons"]) == 1 and "variance" in c["reasons"][0]
    # half the classes: generated classes 2 and 3 sit on real class 0's square (full spread)
    half = np.concatenate([_square(*centres[0]), _square(*centres[1]), _square(*centres[0]),
                           _square(*centres[0])])
    sh = nearest_centroid_shares(half, rl, real, rl)
    assert sh == {"0": 1.0, "1": 1.0, "2": 0.0, "3": 0.0}
    assert class_coverage(sh) == 0.5
    hs = collapse_stats(half, rl, real, rl)
    assert hs["collapsed"] is False and hs["uncovered"] == ["2", "3"]   # half is not < half
    # one class of four covered -> collapsed by coverage; the variance ratio stays 1
    one = np.concatenate([_square(*centres[0])] * 4)
    oc = collapse_stats(one, rl, real, rl)
    assert oc["coverage"] == 0.25 and oc["variance_ratio"] == pytest.approx(1.0)
    assert oc["collapsed"] is True and "covers 25%" in oc["reasons"][0]
    # min_share: 1 of 20 samples (5%) at its own centroid covers the class, 0 of 20 does not
    assert class_coverage({"0": 0.05, "1": 0.0}) == 0.5
    assert class_coverage({"0": 0.05}, min_share=0.06) == 0.0
    # a class without generated samples is not covered; labels without a real class ignored
    assert nearest_centroid_shares(real[:4], np.array([0, 0, 9, 9]), real, rl) == {
        "0": 1.0, "1": 0.0, "2": 0.0, "3": 0.0}
    with pytest.raises(ValueError, match="same dimension"):
        total_variance_ratio(real[:, :1], rl, real, rl)
    with pytest.raises(ValueError, match="gen"):
        nearest_centroid_shares(real, rl[:3], real, rl)


def test_collapse_verdict_unknown_and_thresholds():
    from featsel.confirmation import collapse_verdict

    v = collapse_verdict(float("nan"), {})
    assert v["collapsed"] is None and v["reasons"] == []
    v = collapse_verdict(0.2, {"0": 1.0}, min_variance_ratio=0.3)
    assert v["collapsed"] is True and v["min_variance_ratio"] == 0.3


def test_still_improving_rule():
    from featsel.confirmation import STILL_IMPROVING_THRESHOLD, still_improving

    assert STILL_IMPROVING_THRESHOLD == 0.05
    steps = [75, 150, 225, 300]
    # FD 6 at 75% -> 5.6 at the end: (6 - 5.6) / 6 = 6.7% > 5%
    r = still_improving(steps, [10.0, 8.0, 6.0, 5.6], 300)
    assert r["still_improving"] is True and r["ref_step"] == 225 and r["final_step"] == 300
    assert r["rel_improvement"] == pytest.approx(0.4 / 6)
    # 3.3%: converged enough; exactly 5% is not "more than 5%"; a rising FD is not improving
    assert still_improving(steps, [10.0, 8.0, 6.0, 5.8], 300)["still_improving"] is False
    assert still_improving(steps, [1, 1, 10.0, 9.5], 300)["still_improving"] is False
    assert still_improving(steps, [1, 1, 5.0, 7.0], 300)["still_improving"] is False
    assert still_improving(steps, [10.0, 8.0, 6.0, 5.8], 300,
                           threshold=0.02)["still_improving"] is True
    # without a point at 75%: the last one before it (150); missing / NaN points are skipped
    r = still_improving([75, 150, 300], [10.0, 8.0, 7.0], 300)
    assert r["ref_step"] == 150 and r["rel_improvement"] == pytest.approx(1 / 8)
    r = still_improving(steps, [10.0, 8.0, None, 7.0], 300)
    assert r["ref_step"] == 150
    # two steps (budget 2): step 1 is the reference
    assert still_improving([1, 2], [4.0, 2.0], 2)["ref_step"] == 1
    # not checkable: no final FD, or no earlier point
    assert still_improving(steps, [10.0, 8.0, 6.0, float("nan")], 300)["still_improving"] is None
    r = still_improving([300], [5.0], 300)
    assert r["still_improving"] is None and "no evaluation" in r["note"]
    with pytest.raises(ValueError, match="same length"):
        still_improving(steps, [1.0], 300)


def test_curve_over_seeds_and_eval_steps():
    import math

    from featsel.confirmation import curve_over_seeds
    from generation.validate import ValidateConfig, eval_steps

    c = curve_over_seeds([{1: 2.0, 2: 1.0}, {1: 4.0, 2: None}, {1: float("nan")}], [1, 2, 3])
    assert c["steps"] == [1, 2, 3] and c["mean"][:2] == [3.0, 1.0] and math.isnan(c["mean"][2])
    assert c["n_seeds"] == [2, 1, 0]
    assert ValidateConfig().eval_fractions == (0.25, 0.5, 0.75, 1.0)
    assert eval_steps((0.25, 0.5, 0.75, 1.0), 300) == [75, 150, 225, 300]
    assert eval_steps((0.25, 0.5, 0.75, 1.0), 2) == [1, 2]
    assert eval_steps((0.25, 0.5, 0.75, 1.0), 5) == [1, 3, 4, 5]
    assert eval_steps((0.5,), 10) == [5, 10]           # the final step is always evaluated
    for bad in ((0.0, 1.0), (1.5,), (), ("x",)):
        with pytest.raises(ValueError, match="--eval-fractions"):
            eval_steps(bad, 10)


def test_summarize_curves_convergence_warning_and_collapse(tmp_path):
    """Curves (mean over seeds per step), the still-improving warning for a candidate and for
    the best run, a collapsed run marked with its numbers and counted, its FDs kept."""
    from generation.validate import summarize
    from reports import render_validation_report

    fds = {c: {"m1": [v, v + 0.1], "m2": [v, v + 0.2]} for c, v in zip("abc", (1.0, 2.0, 3.0))}
    flat = {1: 3.0, 3: 1.5, 4: 1.02, 5: 1.0}      # 2% over the last quarter: converged
    steep = {1: 3.0, 3: 2.0, 4: 1.5, 5: 1.0}      # FD 1.5x at step 4 (the 75% point) -> 33%
    curves = {"a": [steep, steep], "b": [flat, flat], "c": [flat, flat]}
    collapsed = {"variance_ratio": 0.01, "nearest_share_per_class": {"0": 1.0, "1": 0.0}}
    cfg, jobs, score = _fake_sweep(tmp_path, fds, [], curves=curves,
                                   collapse={("b", 1): collapsed})
    rep = summarize(cfg, list(fds), ["m1", "m2"], jobs, score)
    assert rep["eval_steps"] == [1, 3, 4, 5]
    cur = rep["curves"]["a"]["fd[m1]"]
    assert cur["steps"] == [1, 3, 4, 5] and cur["n_seeds"] == [2, 2, 2, 2]
    assert cur["mean"] == pytest.approx([3 * 1.05, 2 * 1.05, 1.5 * 1.05, 1.05])
    assert cur["per_seed"]["1"] == pytest.approx([3.3, 2.2, 1.65, 1.1])
    conv = rep["convergence"]["per_candidate"]
    assert conv["a"]["cond_fd[m2]"]["still_improving"] is True
    assert conv["a"]["fd[m1]"]["rel_improvement"] == pytest.approx(1 / 3)
    assert conv["b"]["fd[m1]"]["still_improving"] is False
    # the best run of every metric is a's seed 0, still improving
    assert rep["convergence"]["best_runs"]["fd[m1]"]["candidate"] == "a"
    assert rep["convergence"]["best_runs"]["fd[m1]"]["seed"] == 0
    w = rep["warnings"]
    assert any(x.startswith("candidate 'a' was still improving") for x in w)
    assert any("best run" in x and "'a' seed 0" in x for x in w)
    assert not any("'b' was still improving" in x for x in w)
    # collapse: b seed 1 (variance ratio 0.01, 1 of 2 classes covered)
    runs = {(r["candidate"], r["seed"]): r for r in rep["collapse"]["runs"]}
    assert runs["b", 1]["collapsed"] is True and len(runs["b", 1]["reasons"]) == 1
    assert runs["b", 1]["variance_ratio"] == 0.01 and runs["b", 1]["coverage"] == 0.5
    assert runs["a", 0]["collapsed"] is False
    assert rep["collapse"]["space"] == "m1"
    assert rep["collapse"]["per_candidate"]["b"] == {"n_collapsed": 1, "n_runs": 2,
                                                     "n_unknown": 0}
    rows = {r["candidate"]: r for r in rep["table"]}
    assert rows["b"]["n_collapsed"] == 1 and rows["a"]["n_collapsed"] == 0
    assert rep["fd"]["b"]["m1"] == [2.0, 2.1]        # its metrics kept
    assert any("'b': 1 of 2 run(s) collapsed" in x for x in w)
    assert "Caution: 1 candidate(s) still improving" in rep["verdict"]
    assert "1 collapsed run(s)" in rep["verdict"]
    # the report shows the warnings, the collapsed marker and the curves figure
    page = render_validation_report(rep, tmp_path / "html").read_text()
    assert 'id="warnings"' in page and "COLLAPSED 1/2" in page and 'id="collapse"' in page
    png = tmp_path / "html" / "figures" / "validation_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'id="curves"' in page


def test_old_eval_json_without_curves_is_still_readable(tmp_path):
    """A sweep evaluated before the curves and the collapse statistics: the final FDs rank as
    before; each curve holds the final step only, convergence is not checkable, and both gaps
    are said in the warnings (nothing raises)."""
    import json
    from pathlib import Path

    from generation.validate import summarize
    from reports import render_validation_report

    fds = {c: {"m1": [v, v + 0.1], "m2": [v, v + 0.2]} for c, v in zip("abc", (1.0, 2.0, 3.0))}
    cfg, jobs, score = _fake_sweep(tmp_path, fds, [])
    for j in jobs:  # strip the collapse statistics too
        p = Path(j.run_dir) / "eval.json"
        ev = json.loads(p.read_text())
        for entry in ev["alphas"]["1"].values():
            del entry["collapse"]
        p.write_text(json.dumps(ev))
    rep = summarize(cfg, list(fds), ["m1", "m2"], jobs, score)
    assert rep["mean_fd_rank"] == {"a": 1.0, "b": 2.0, "c": 3.0}
    cur = rep["curves"]["a"]["fd[m1]"]
    assert cur["mean"][:3] == [None, None, None] and cur["mean"][3] == pytest.approx(1.05)
    assert rep["convergence"]["per_candidate"]["a"]["fd[m1]"]["still_improving"] is None
    assert all(r["collapsed"] is None for r in rep["collapse"]["runs"])
    assert any("no evaluation at step(s) [1, 3, 4]" in x for x in rep["warnings"])
    assert any("no collapse statistics" in x for x in rep["warnings"])
    assert "Caution" not in rep["verdict"]
    page = render_validation_report(rep, tmp_path / "html").read_text()
    assert "No FD-vs-step curves" in page


def test_predictors_read_every_registered_criterion_and_the_ranking_one():
    from generation.validation.collect import predictors, ranking_predictor

    def crit(v):
        return {"mean": v, "ci_low": v, "ci_high": v}

    per = {c: {"delta": {"0.05": crit(d)}, "effective_rank": e,
               "criteria": {"transport_fidelity": crit(p), "effective_rank": crit(e)}}
           for c, d, e, p in (("a", 0.1, 5.0, 0.4), ("b", 0.2, 3.0, 0.6),
                              ("noise:dim=1", 0.05, 1.0, 1.0))}
    score = {"ranking": {"candidates": per, "criterion": "transport_fidelity"}}
    preds = predictors(score, list(per), set())
    assert preds["transport_fidelity"] == ({"a": 0.4, "b": 0.6, "noise:dim=1": 1.0}, True)
    assert preds["effective_rank"][1] is False and "delta_ot@0.05" in preds
    assert ranking_predictor(score, preds, "0.05") == "transport_fidelity"
    # an older score (no criterion) is judged by its Delta_OT ranking
    assert ranking_predictor({"ranking": {}}, preds, "0.05") == "delta_ot@0.05"


def test_kendall_permutation_p_matches_scipy_exact_and_handles_ties():
    import itertools

    import numpy as np
    from scipy.stats import kendalltau

    from featsel.confirmation import kendall_permutation_p

    # every order of 5 and 6 untied candidates: SciPy's exact one-sided test is the reference
    for n in (5, 6):
        o = np.arange(float(n))
        for q in itertools.islice(itertools.permutations(range(n)), 0, None, 7):
            q = np.asarray(q, dtype=float)
            ref = kendalltau(q, o, method="exact", alternative="greater").pvalue
            assert kendall_permutation_p(q, o) == pytest.approx(ref, abs=1e-12)
    # ties in the outcome (a shared mean FD rank): the orders are counted by hand. o ties b, c;
    # S counts the 2 untied pairs of (a, b, c) that are concordant minus discordant; of the 6
    # orders of p = (0, 1, 2), S >= S(identity) = 2 only for (0, 1, 2) and (0, 2, 1)
    assert kendall_permutation_p(np.array([0.0, 1, 2]), np.array([0.0, 1, 1])) == \
        pytest.approx(2 / 6)
    # 10 candidates: Monte Carlo; a perfect order is essentially never matched by chance
    y = np.arange(10.0)
    assert kendall_permutation_p(y, y) < 1e-3
    assert kendall_permutation_p(y, -y) == pytest.approx(1.0)


def test_pooled_kendall_p_exact_by_hand_single_set_and_monte_carlo():
    import numpy as np
    from scipy.stats import kendalltau

    from featsel.confirmation import kendall_permutation_p, pooled_kendall_p

    # 3 untied candidates: tau in {1, 1/3, -1/3, -1} with probabilities 1, 2, 2, 1 over 6.
    # Taus 1 and 1/3 (sum 4/3): P(sum >= 4/3) = P(1,1) + P(1,1/3) + P(1/3,1) = (1 + 2 + 2)/36
    a = np.array([0.0, 1, 2])
    r = pooled_kendall_p([(a, a), (np.array([1.0, 0, 2]), a)])
    assert r["kendall"] == pytest.approx([1.0, 1 / 3], abs=1e-12)
    assert r["mean_kendall"] == pytest.approx(2 / 3, abs=1e-12)
    assert r["p"] == pytest.approx(5 / 36, abs=1e-12) and r["exact"] and r["n"] == [3, 3]
    # one data set: the pooled test is the single permutation test; tau-b equals SciPy's
    p1, o1 = np.array([0.3, 0.1, 0.2, 0.9, 0.5, 0.4]), np.array([2.0, 1, 3, 6, 4, 4])  # o ties
    one = pooled_kendall_p([(p1, o1)])
    assert one["p"] == pytest.approx(kendall_permutation_p(p1, o1), abs=1e-12)
    assert one["kendall"][0] == pytest.approx(kendalltau(p1, o1).statistic, abs=1e-12)
    # three sets with ties, against independent random permutations drawn here
    sets = [(p1, o1), (np.array([1.0, 3, 2, 4, 5]), np.arange(5.0)),
            (np.array([0.0, 2, 1, 3]), np.array([1.0, 1, 2, 3]))]
    r = pooled_kendall_p(sets)
    import itertools

    rng = np.random.default_rng(1)
    m = 200000
    total = np.zeros(m)
    for p, o in sets:  # SciPy's tau of every order, then m independent draws of an order
        taus = np.array([kendalltau(p[list(q)], o).statistic
                         for q in itertools.permutations(range(len(p)))])
        total += taus[rng.integers(0, len(taus), m)]
    mc = float(np.mean(total >= sum(r["kendall"]) - 1e-9))
    assert abs(r["p"] - mc) < 4 * np.sqrt(mc * (1 - mc) / m) + 1e-3
    with pytest.raises(ValueError, match="pairs"):
        pooled_kendall_p([])
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        pooled_kendall_p([(np.arange(2.0), np.arange(2.0))])


def test_support_metrics_match_a_scikit_learn_knn_reference():
    """k-NN precision/recall (torch-fidelity) against an independent count with scikit-learn's
    NearestNeighbors, on the same halves of the real set: shares of 100 points (a step of 0.01)
    that torch-fidelity returns in float32, so equal to 1e-6."""
    import numpy as np
    import torch
    from sklearn.neighbors import NearestNeighbors

    from featsel.diagnostics.frechet import support_metrics

    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 5))
    gen = np.concatenate([rng.normal(size=(60, 5)), rng.normal(size=(40, 5)) + 6.0])
    out = support_metrics(gen, real, k=3, seed=1)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(1)).numpy()
    a, b = real[perm[:100]], real[perm[100:]]

    def inside(x, ref, k=3):  # share of x within the k-NN ball of some point of ref
        radius = NearestNeighbors(n_neighbors=k + 1).fit(ref).kneighbors(ref)[0][:, -1]
        d = np.linalg.norm(x[:, None] - ref[None], axis=-1)
        return float((d <= radius[None]).any(1).mean())

    assert out["precision"] == pytest.approx(inside(gen, b), abs=1e-6)
    assert out["precision_real"] == pytest.approx(inside(a, b), abs=1e-6)
    assert out["recall"] == pytest.approx(inside(b, gen), abs=1e-6)
    assert out["recall_real"] == pytest.approx(inside(b, a), abs=1e-6)
    assert out["precision"] <= 0.6 < out["precision_real"]  # the shifted 40% are off the data
    assert out["n_reference"] == 100 and out["k"] == 3
    # real samples themselves: precision equals the reference's, not off the data
    same = support_metrics(a, real, k=3, seed=1)
    assert same["precision"] == pytest.approx(inside(a, b), abs=1e-6)
    with pytest.raises(ValueError, match="dimensions differ"):
        support_metrics(gen[:, :3], real)
    with pytest.raises(ValueError, match="need >= 8 real"):
        support_metrics(gen, real[:5])


def test_off_data_verdict_rule():
    import math

    from featsel.confirmation import OFF_DATA_MIN_PRECISION_RATIO, off_data_verdict

    assert OFF_DATA_MIN_PRECISION_RATIO == 0.5
    v = off_data_verdict(0.05, 0.94)
    assert v["off_data"] is True and v["ratio"] == pytest.approx(0.05 / 0.94)
    assert "below 50%" in v["reason"]
    assert off_data_verdict(0.47, 0.94)["off_data"] is False     # exactly half is not below
    assert off_data_verdict(0.4, 0.9, min_ratio=0.4)["off_data"] is False
    assert off_data_verdict(None, 0.9)["off_data"] is None
    assert off_data_verdict(0.5, 0.0)["off_data"] is None
    assert math.isnan(off_data_verdict(float("nan"), 0.9)["ratio"])
    with pytest.raises(ValueError, match="min_ratio"):
        off_data_verdict(0.5, 0.9, min_ratio=0.0)


def test_summarize_marks_runs_off_the_data(tmp_path):
    """A run whose samples are off the data (precision far below held-out real samples') is
    marked, counted, warned about and badged in the report; its FDs are kept; runs evaluated
    before support was measured count as unknown."""
    from generation.validate import summarize
    from reports import render_validation_report

    fds = {c: {"m1": [v, v + 0.1], "m2": [v, v + 0.2]} for c, v in zip("abc", (1.0, 2.0, 3.0))}
    good = {"precision": 0.9, "precision_real": 0.94, "recall": 0.5, "recall_real": 0.9}
    off = {"precision": 0.05, "precision_real": 0.94, "recall": 0.1, "recall_real": 0.9}
    sup = {("a", 0): good, ("a", 1): good, ("b", 0): good, ("b", 1): good,
           ("c", 0): off, ("c", 1): off}
    cfg, jobs, score = _fake_sweep(tmp_path, fds, [], support=sup)
    rep = summarize(cfg, list(fds), ["m1", "m2"], jobs, score)
    per = rep["support"]["per_candidate"]
    assert per["c"]["n_off_data"] == 2 and per["a"]["n_off_data"] == 0
    assert per["c"]["precision"] == pytest.approx(0.05)
    assert rep["support"]["space"] == "m1" and rep["support"]["min_ratio"] == 0.5
    rows = {r["candidate"]: r for r in rep["table"]}
    assert rows["c"]["n_off_data"] == 2 and rows["c"]["precision[m1]"] == pytest.approx(0.05)
    assert rep["fd"]["c"]["m1"] == [3.0, 3.1]        # its metrics kept
    assert any("'c': 2 of 2 run(s) off the data in 'm1'" in x for x in rep["warnings"])
    assert "2 run(s) off the data" in rep["verdict"]
    page = render_validation_report(rep, tmp_path / "html").read_text()
    assert "OFF DATA 2/2" in page and 'id="off-data"' in page
    # without support statistics (older eval.json): unknown, no warning
    cfg, jobs, score = _fake_sweep(tmp_path / "old", fds, [])
    rep = summarize(cfg, list(fds), ["m1", "m2"], jobs, score)
    assert all(r["off_data"] is None for r in rep["support"]["runs"])
    assert not any("off the data" in x for x in rep["warnings"])
