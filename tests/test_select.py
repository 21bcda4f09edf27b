"""`featsel select`: the halving rules against hand-computed cases, a tiny selection on digits
(local pool and Ray started here: same choice), resume after a kill, and bad input."""

import json
import math
import shutil
import socket
import sys
import time

import pytest

from featsel.cli import main
from featsel.halving import (
    compute_summary,
    keep_count,
    keep_shares,
    order_candidates,
    run_ranks,
    rung0,
    rung_sizes,
    rung_steps,
    schedule,
)
from generation.select import SelectConfig, run_select

TINY = ["n_gen=8", "n_pos=16", "n_unc=4", "queue_size=32", "uncond_queue_size=64",
        "queue_push=16", "eval_n_per_class=12", "ema_decays=[0.9]", "warmup_steps=1"]
CANDS = ["identity", "pca:dim=16", "random-projection:dim=16"]


def _cfg(**kw) -> SelectConfig:
    base = dict(data="digits", featurizers=list(CANDS),
                evaluations=["pca:dim=8", "random-projection:dim=8"], budget=6, seeds=2, eta=3,
                config="configs/digits_tiny.yaml", overrides=list(TINY), score_max_samples=300,
                score_repeats=2, progress=False)
    base.update(kw)
    return SelectConfig(**base)


# --- the rules, by hand ------------------------------------------------------------------


def test_rung_sizes_and_steps_by_hand():
    assert rung_sizes(1, 3) == [1]
    assert rung_sizes(3, 3) == [3, 1]
    assert rung_sizes(2, 3) == [2, 1]
    assert rung_sizes(4, 2) == [4, 2, 1]
    assert rung_sizes(10, 3) == [10, 4, 2, 1]
    assert rung_sizes(9, 3) == [9, 3, 1]
    assert keep_count(7, 3) == 3 and keep_count(1, 5) == 1
    assert rung_steps(2, 3, 9) == [3, 9]
    assert rung_steps(3, 3, 90) == [10, 30, 90]
    assert rung_steps(4, 3, 100) == [4, 11, 33, 100]   # 100/27 = 3.7, 100/9 = 11.1, 33.3
    assert rung_steps(3, 3, 3) == [1, 2, 3]           # floors: one step per rung
    assert rung_steps(1, 3, 7) == [7]
    # every budget >= the number of rungs splits into strictly increasing rungs ending at B
    for n in range(1, 30):
        for eta in (2, 3, 4, 5):
            R = len(rung_sizes(n, eta))
            for b in range(R, 120):
                s = rung_steps(R, eta, b)
                assert s[-1] == b and s[0] >= 1 and all(x < y for x, y in zip(s, s[1:]))


def test_schedule_costs_by_hand():
    plan = schedule(3, 3, 9, seeds=2)
    assert [(p["n"], p["from_step"], p["steps"], p["candidate_steps"]) for p in plan] == [
        (3, 0, 3, 18), (1, 3, 9, 12)]
    comp = compute_summary(plan, n_candidates=3, seeds=2, budget=9)
    assert comp["candidate_steps"] == 30 and comp["full_sweep_candidate_steps"] == 54
    assert comp["fraction"] == pytest.approx(30 / 54)
    # 9 candidates, eta 3, B = 27, 1 seed: 9*3 + 3*6 + 1*18 = 63 of 243 (26%)
    plan = schedule(9, 3, 27)
    assert [p["steps"] for p in plan] == [3, 9, 27]
    assert compute_summary(plan, n_candidates=9, seeds=1, budget=27)["candidate_steps"] == 63


def test_run_ranks_ties_collapse_and_exclusions_by_hand():
    fd = {"a": {"m1": [1, 4], "m2": [2, 2]}, "b": {"m1": [2, 3], "m2": [1, 5]},
          "c": {"m1": [3, 1], "m2": [3, 1]}}
    r = run_ranks(fd)
    # m1: (a1 b2 c3), (a3 b2 c1); m2: (b1 a2 c3), (c1 a2 b3): a three-way tie at 2
    assert r["ranks"]["m1"] == [{"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1}]
    assert r["mean_rank"] == {"a": 2.0, "b": 2.0, "c": 2.0} and r["n_cells"]["a"] == 4
    # ties broken by the prior, then by the name
    assert order_candidates(r["mean_rank"], ["c", "a", "b"]) == ["c", "a", "b"]
    assert order_candidates(r["mean_rank"]) == ["a", "b", "c"]
    assert order_candidates(r["mean_rank"], ["b"]) == ["b", "a", "c"]
    # c's seed 1 collapsed: ranked below every healthy run in both metrics at seed 1
    r = run_ranks(fd, {"c": [False, True]})
    assert r["ranks"]["m1"][1] == {"a": 2, "b": 1, "c": 3}
    assert r["ranks"]["m2"][1] == {"a": 1, "b": 2, "c": 3}
    assert r["mean_rank"] == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert order_candidates(r["mean_rank"], ["c", "b", "a"]) == ["b", "a", "c"]
    # b and c collapsed at seed 1: both below a, and between themselves by FD (c 1 < b 3)
    r = run_ranks(fd, {"b": [False, True], "c": [False, True]})
    assert r["ranks"]["m1"][1] == {"a": 1, "b": 3, "c": 2}
    assert r["ranks"]["m2"][1] == {"a": 1, "b": 3, "c": 2}
    # a non-finite FD is ranked after collapsed runs; equal FDs share the average rank
    r = run_ranks({"a": {"m": [math.nan]}, "b": {"m": [5.0]}, "c": {"m": [2.0]},
                   "d": {"m": [2.0]}}, {"b": [True]})
    assert r["ranks"]["m"] == [{"a": 4, "b": 3, "c": 1.5, "d": 1.5}]
    # metric hacking: a is left out of m2 and ranked on m1 only
    r = run_ranks(fd, exclude=[("a", "m2")])
    assert r["ranks"]["m2"] == [{"b": 1, "c": 2}, {"b": 2, "c": 1}]
    assert r["mean_rank"]["a"] == 2.0 and r["n_cells"]["a"] == 2
    assert r["mean_rank"]["b"] == pytest.approx((2 + 2 + 1 + 2) / 4)
    r = run_ranks({"a": {"m": [1.0]}, "b": {"m": [2.0]}}, exclude=[("a", "m")])
    assert math.isnan(r["mean_rank"]["a"]) and order_candidates(r["mean_rank"]) == ["b", "a"]
    with pytest.raises(ValueError, match="seed"):
        run_ranks({"a": {"m": [1.0, 2.0]}, "b": {"m": [1.0]}})


def test_keep_shares_by_hand():
    # a = [1, 3], b = [2, 2], keep 1, prior (b, a): a is kept only when both draws are seed 0
    # (mean rank 1); draws (0, 1) and (1, 0) tie at 1.5 and go to b by the prior: P(a) = 1/4
    fd = {"a": {"m": [1.0, 3.0]}, "b": {"m": [2.0, 2.0]}}
    sh = keep_shares(fd, 1, prior=["b", "a"], n_boot=4000, seed=0)
    assert sh["a"] == pytest.approx(0.25, abs=0.02) and sh["a"] + sh["b"] == pytest.approx(1)
    # prior (a, b): the ties go to a, P(a) = 3/4
    assert keep_shares(fd, 1, prior=["a", "b"], n_boot=4000)["a"] == pytest.approx(0.75, abs=0.02)
    # a = [1, 1.5] always beats b, unless its seed 1 collapsed: a cell holding that run ranks a
    # below b, so with prior (b, a) a needs the draw (0, 0) again
    fd2 = {"a": {"m": [1.0, 1.5]}, "b": {"m": [2.0, 2.0]}}
    assert keep_shares(fd2, 1, prior=["b", "a"], n_boot=100)["a"] == 1.0
    assert keep_shares(fd2, 1, collapsed={"a": [False, True]}, prior=["b", "a"],
                       n_boot=4000)["a"] == pytest.approx(0.25, abs=0.02)
    # keep 2 of 2: every candidate always goes on; one seed: nothing to resample
    assert keep_shares(fd, 2, n_boot=10) == {"a": 1.0, "b": 1.0}
    assert keep_shares({c: {"m": v["m"][:1]} for c, v in fd.items()}, 1) is None
    # metric hacking: with a left out of m, b is ranked alone there and a on nothing (last)
    assert keep_shares(fd, 1, exclude=[("a", "m")], n_boot=10) == {"a": 0.0, "b": 1.0}
    with pytest.raises(ValueError, match="keep"):
        keep_shares(fd, 0)
    with pytest.raises(ValueError, match="n_boot"):
        keep_shares(fd, 1, n_boot=0)


def test_rung0_drops_controls_unrankable_and_the_prior_tail():
    prior = ["p", "noise:dim=1", "q", "r", "s"]
    out = rung0(prior, controls=["noise:dim=1"], unrankable={"r": "no independent FD"})
    assert out["survivors"] == ["p", "q", "s"] and not out["prior_keep_applied"]
    assert {d["candidate"] for d in out["dropped"]} == {"noise:dim=1", "r"}
    out = rung0(prior, controls=["noise:dim=1"], prior_keep=0.5)
    assert out["survivors"] == ["p", "q"]               # ceil(0.5 * 4) = 2, best first
    assert "--prior-keep" in out["dropped"][-1]["reason"]
    # the score's criterion ranked a control above a real candidate: the prior drops nothing
    out = rung0(prior, controls=["noise:dim=1"], prior_keep=0.5, prior_valid=False)
    assert out["survivors"] == ["p", "q", "r", "s"] and not out["prior_keep_applied"]
    with pytest.raises(ValueError, match="--prior-keep"):
        rung0(prior, prior_keep=0)


# --- a tiny selection on digits ----------------------------------------------------------


@pytest.fixture(scope="module")
def local_selection(tmp_path_factory):
    out = tmp_path_factory.mktemp("select") / "local"
    t0 = time.perf_counter()
    res = run_select(_cfg(), out)
    return out, res, time.perf_counter() - t0


def _mtimes(out):
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in (out / "runs").rglob("checkpoint.pt")}


def test_local_selection_end_to_end(local_selection, capsys):
    out, res, _ = local_selection
    saved = json.loads((out / "selection.json").read_text())
    assert saved["complete"] and saved["chosen"] == res["chosen"] in CANDS
    assert saved["chosen_reason"]
    from featsel.score import evidence  # the probe's record, as the score read it (addendum 15)
    assert saved["probe_evidence"] == evidence().get("probe")
    # rung 0: the two noise controls the score adds are scored, dropped, never trained
    assert len(saved["prior"]["controls"]) == 2
    assert saved["rung0"]["survivors"] == [c for c in saved["prior"]["order"] if c in CANDS]
    assert not any((out / "runs" / c).exists() for c in ("noise_dim_1", "noise_dim_16"))
    # 3 candidates, eta 3, budget 6: rung 1 trains 3 x 2 seeds to step 2, rung 2 the best to 6
    rungs = saved["rungs"]
    assert [(r["steps"], len(r["candidates"]), len(r["kept"])) for r in rungs] == [
        (2, 3, 1), (6, 1, 1)]
    assert rungs[1]["candidates"] == rungs[0]["kept"] == [rungs[0]["order"][0]]
    assert rungs[-1]["order"][0] == saved["chosen"]
    for r in rungs:
        assert set(r["fd"]) == set(r["candidates"])
        for c in r["candidates"]:
            assert set(r["fd"][c]) == {"fd[pca:dim=8]", "cond_fd[pca:dim=8]",
                                       "fd[random-projection:dim=8]",
                                       "cond_fd[random-projection:dim=8]"}
            assert all(len(v) == 2 and all(math.isfinite(x) for x in v)
                       for v in r["fd"][c].values())
            assert len(r["collapsed"][c]) == 2 and math.isfinite(r["mean_rank"][c])
        # the cut's sureness: shares in [0, 1] summing to the number kept
        assert set(r["keep_share"]) == set(r["candidates"])
        assert sum(r["keep_share"].values()) == pytest.approx(len(r["kept"]))
    assert rungs[-1]["keep_share"] == {saved["chosen"]: 1.0}
    close = [w for w in saved["warnings"] if "close call" in w]
    assert bool(close) == any(x >= 0.25 for c, x in rungs[0]["keep_share"].items()
                              if c not in rungs[0]["kept"])
    assert all(j["status"] == "trained" for r in rungs for j in r["jobs"])
    assert [j["steps_run"] for j in rungs[1]["jobs"]] == [4, 4]    # continued from step 2
    assert all(j["resumed_from"] == 2 for j in rungs[1]["jobs"])
    comp = saved["compute"]
    assert comp["candidate_steps"] == 3 * 2 * 2 + 1 * 2 * 4 == saved["steps_trained_this_run"]
    assert comp["full_sweep_candidate_steps"] == 3 * 2 * 6
    assert comp["fraction"] == pytest.approx(20 / 36)
    assert saved["stopped_at"][saved["chosen"]] == 2
    assert sorted(saved["stopped_at"].values()) == [0, 0, 1, 1, 2]
    # the chosen run is the full-budget run featsel validate trains (one schedule: steps = B)
    run = out / rungs[1]["jobs"][0]["run"]
    assert "steps: 6" in (run / "config.yaml").read_text()
    html = (out / "selection.html").read_text()
    assert 'id="rung-diagram"' in html and "data:image/png;base64," in html
    assert all(c in html for c in CANDS) and "stopped" in html
    assert ('id="probe"' in html) == bool(saved["probe_evidence"])

    # the CLI refuses the folder without --resume; with it, nothing is retrained
    before = _mtimes(out)
    (out / "selection.json").unlink()
    (out / "selection.html").unlink()
    rc = main(["select", "--featurizers", ",".join(CANDS), "--budget", "6", "--out", str(out),
               "--quiet"])
    assert rc == 1 and "--resume" in capsys.readouterr().err
    argv = ["select", "--featurizers", ",".join(CANDS), "--eval-featurizers",
            "pca:dim=8,random-projection:dim=8", "--config", "configs/digits_tiny.yaml",
            *[x for s in TINY for x in ("--set", s)], "--budget", "6", "--seeds", "2",
            "--score-max-samples", "300", "--score-repeats", "2", "--out", str(out), "--quiet",
            "--resume"]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith(f"chosen: {saved['chosen']}") and "56%" in line
    again = json.loads((out / "selection.json").read_text())
    assert _mtimes(out) == before and again["steps_trained_this_run"] == 0
    assert all(j["status"] == "reused" for r in again["rungs"] for j in r["jobs"])
    assert again["chosen"] == saved["chosen"] and again["rungs"][0]["fd"] == rungs[0]["fd"]
    # a resume with other settings is refused, naming them
    rc = main([*argv, "--eta", "2"])
    assert rc == 1 and "eta=3, now 2" in capsys.readouterr().err


def test_resume_after_a_kill_skips_finished_jobs(local_selection, tmp_path, monkeypatch):
    """Killed in the 4th job, between its training and its evaluation: the rerun reuses the 3
    finished jobs, evaluates the 4th without training it again, trains the rest; the outcome is
    the uninterrupted selection's."""
    ref_dir, ref, _ = local_selection
    out = tmp_path / "killed"
    out.mkdir()
    shutil.copytree(ref_dir / "score", out / "score")   # reused: same settings
    import generation.evaluate

    real = generation.evaluate.evaluate_run
    calls = {"n": 0}

    def killed_in_fourth(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real(*a, **kw)

    monkeypatch.setattr(generation.evaluate, "evaluate_run", killed_in_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_select(_cfg(), out)
    monkeypatch.setattr(generation.evaluate, "evaluate_run", real)
    assert not (out / "selection.json").exists()
    before = _mtimes(out)
    assert len(before) == 4                              # 3 finished + 1 trained, unevaluated
    with pytest.raises(ValueError, match="--resume"):
        run_select(_cfg(), out)
    res = run_select(_cfg(), out, resume=True)
    status = {(j["candidate"], j["seed"]): j for j in res["rungs"][0]["jobs"]}
    assert sorted(j["status"] for j in status.values()) == [
        "evaluated", "reused", "reused", "reused", "trained", "trained"]
    after = _mtimes(out)
    for j in status.values():
        if j["status"] != "trained":
            assert j["steps_run"] == 0
            if j["candidate"] != res["chosen"]:     # the chosen one trains on in rung 2
                assert after[j["run"] + "/checkpoint.pt"] == before[j["run"] + "/checkpoint.pt"]
    assert all(j["resumed_from"] == 2 for j in res["rungs"][1]["jobs"])
    assert res["steps_trained_this_run"] == 2 * 2 + 2 * 4  # two rung-1 jobs + rung 2
    assert res["chosen"] == ref["chosen"]
    assert res["rungs"][0]["fd"] == ref["rungs"][0]["fd"]
    assert res["rungs"][1]["fd"] == ref["rungs"][1]["fd"]


def test_ray_started_here_makes_the_same_choice(local_selection, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'featsel[cluster]')")
    ref_dir, ref, t_local = local_selection
    out = tmp_path / "ray"
    out.mkdir()
    shutil.copytree(ref_dir / "score", out / "score")
    res = run_select(_cfg(executor="ray", jobs=2), out)
    assert res["executor"]["executor"] == "ray" and res["executor"]["cluster_cpus"] == 2
    assert res["chosen"] == ref["chosen"]
    for a, b in zip(res["rungs"], ref["rungs"]):
        assert a["candidates"] == b["candidates"] and a["order"] == b["order"]
        # The same runs: the FDs agree to 1e-7 relative, where another seed differs by percent.
        # Not bit for bit: torch's MKL picks float64 kernels by memory alignment (bitwise
        # reproducible only under MKL_CBWR), and FD's square roots of the round-off eigenvalues
        # of a rank-deficient covariance turn 1e-16 into 1e-9 (seen in a full suite's order).
        assert a["fd"].keys() == b["fd"].keys()
        for c in a["fd"]:
            assert a["fd"][c].keys() == b["fd"][c].keys()
            for m in a["fd"][c]:
                assert a["fd"][c][m] == pytest.approx(b["fd"][c][m], rel=1e-7, abs=0)
    assert res["compute"] == ref["compute"]
    assert json.loads((out / "selection.json").read_text())["complete"]


# --- bad input ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_input_fails_before_anything_is_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "never"
    cases = [
        (dict(eta=1), ValueError, "--eta"),
        (dict(budget=1), ValueError, "--budget: expected at least 2"),
        (dict(executor="slurm"), ValueError, "--executor: expected one of local, ray"),
        (dict(prior_keep=1.5), ValueError, "--prior-keep"),
        (dict(address="auto"), ValueError, "--address: only with --executor ray"),
        (dict(featurizers=["noise:dim=1"]), ValueError, "every candidate is a control"),
        (dict(seeds=0), ValueError, "--seeds"),
    ]
    for kw, err, msg in cases:
        with pytest.raises(err, match=msg):
            run_select(_cfg(**kw), out)
    # the CLI prints one line naming the argument
    rc = main(["select", "--featurizers", ",".join(CANDS), "--budget", "6", "--eta", "1",
               "--out", str(out)])
    e = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in e and e.startswith("featsel select: error: --eta")
    # Ray not installed: a line naming the extra, for select and validate alike
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RuntimeError, match=r"featsel\[cluster\]"):
        run_select(_cfg(executor="ray"), out)
    from generation.validate import ValidateConfig, run_validate

    vcfg = dict(featurizers=["identity"], evaluations=["pca:dim=8"],
                config="configs/digits_tiny.yaml")
    with pytest.raises(RuntimeError, match=r"featsel\[cluster\]"):
        run_validate(ValidateConfig(**vcfg, executor="ray"), out)
    with pytest.raises(ValueError, match="--executor"):
        run_validate(ValidateConfig(**vcfg, executor="slurm"), out, dry_run=True)
    assert not out.exists()


def test_unreachable_address_fails_fast(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'featsel[cluster]')")
    out = tmp_path / "never"
    port = _free_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="--address: no Ray cluster answers"):
            run_select(_cfg(executor="ray", address=address), out)
        assert time.perf_counter() - t0 < 10
    with pytest.raises(ValueError, match="--address: expected auto"):
        run_select(_cfg(executor="ray", address="nohostport"), out)
    assert not out.exists()


def test_report_draws_the_rungs_and_escapes_names(tmp_path):
    from reports import render_selection_dir, render_selection_report
    from reports.selection_html import diagram_rows

    bad = "<script>alert(1)</script>"
    m = ["fd[e]", "cond_fd[e]"]
    sel = {
        "title": "t", "chosen": "a", "chosen_reason": "best", "complete": True,
        "prior": {"criterion": "transport_fidelity", "order": [bad, "a", "noise:dim=1"],
                  "controls": ["noise:dim=1"], "recommended": bad},
        "rung0": {"scored": [bad, "a", "noise:dim=1"], "survivors": [bad, "a"],
                  "dropped": [{"candidate": "noise:dim=1", "reason": "control"}]},
        "rungs": [
            {"rung": 1, "steps": 2, "from_step": 0, "candidates": [bad, "a"], "kept": ["a"],
             "stopped": [bad], "order": ["a", bad], "candidate_steps": 4, "metrics": m,
             "mean_fd": {bad: {m[0]: 3.0, m[1]: 4.0}, "a": {m[0]: 1.0, m[1]: 2.0}},
             "mean_rank": {bad: 2.0, "a": 1.0}, "collapsed": {bad: [True], "a": [False]},
             "time_s": 1.0},
            {"rung": 2, "steps": 6, "from_step": 2, "candidates": ["a"], "kept": ["a"],
             "stopped": [], "order": ["a"], "candidate_steps": 4, "metrics": m,
             "mean_fd": {"a": {m[0]: 0.5, m[1]: 1.5}}, "mean_rank": {"a": 1.0},
             "collapsed": {"a": [False]}, "time_s": 1.0}],
        "compute": {"candidate_steps": 8, "full_sweep_candidate_steps": 12, "fraction": 2 / 3,
                    "n_candidates": 2, "seeds": 1, "budget": 6},
        "settings": {"featurizers": [bad, "a"]},
    }
    rows = diagram_rows(sel)
    assert [r["candidate"] for r in rows] == ["a", bad, "noise:dim=1"]
    assert [c["state"] for c in rows[0]["cells"]] == ["kept", "chosen"]
    assert [c["state"] for c in rows[1]["cells"]] == ["stopped", "absent"]
    assert rows[1]["cells"][0]["n_collapsed"] == 1 and rows[2]["rung0"]["state"] == "dropped"
    assert (rows[0]["bar"], rows[1]["bar"], rows[2]["bar"]) == (100.0, 33.3, 0.0)
    html = render_selection_report(sel, tmp_path).read_text()
    assert bad not in html and "&lt;script&gt;" in html
    assert "66.7% of the full sweep" in html and "COLLAPSED 1/1" in html
    assert 'id="probe"' not in html  # no probe record in this selection
    assert "of resamples" not in html  # a selection from before keep shares still renders
    sel["rungs"][0]["keep_share"] = {bad: 0.3, "a": 0.7}
    sel["rungs"][1]["keep_share"] = {"a": 1.0}
    assert diagram_rows(sel)[1]["cells"][0]["keep_share"] == 0.3
    html = render_selection_report(sel, tmp_path).read_text()
    assert "kept in 30% of resamples" in html and "chosen in 100% of resamples" in html
    sel["probe_evidence"] = {"fraction": 1 / 9, "after_the_fact": {
        "datasets": ["x", bad], "mean_kendall": 0.7, "p": 1e-3},
        "test": {"label": "addendum 15", "datasets": ["y", "z"], "mean_kendall": 0.73,
                 "p": 0.0016, "bar_p": 0.05, "held": True}}
    html = render_selection_report(sel, tmp_path).read_text()
    probe = html.split('id="probe"')[1].split("</p>")[0]
    assert "(11% of a full" in probe and "+0.70 (mean over\n 2 data sets" in probe
    assert "+0.73 on its pre-registered test (addendum 15: y, z;" in probe
    assert "<strong>held</strong>" in probe
    (tmp_path / "selection.json").write_text(json.dumps(sel))
    assert render_selection_dir(tmp_path) == tmp_path / "selection.html"
    with pytest.raises(ValueError, match="rungs"):
        render_selection_report({"chosen": "a"}, tmp_path)


def test_selection_runs_carry_validate_curve_and_validate_completes_them(local_selection,
                                                                         tmp_path):
    """A rung that trains past featsel validate's curve steps stops and evaluates there, so
    `featsel validate --resume` in the same folder finds every run's full curve."""
    from generation.run import read_curve
    from generation.validate import run_validate
    from generation.validation.plan import eval_steps

    ref_dir, ref, _ = local_selection
    steps = eval_steps(_cfg().eval_fractions, 6)
    assert steps == [2, 3, 5, 6]  # budget 6 at 25/50/75/100%: rung 2 (2 -> 6) passes 3 and 5
    for j in ref["rungs"][1]["jobs"]:
        assert sorted(read_curve(ref_dir / j["run"])) == [2, 3, 5, 6]
        assert j["steps_run"] == 4
    out = tmp_path / "sweep"
    shutil.copytree(ref_dir, out)
    res = run_validate(_cfg().sweep(), out, resume=True)
    assert not [w for w in res.get("warnings", []) if "no evaluation at step" in w]
    curves = [read_curve(p.parent) for p in (out / "runs").rglob("checkpoint.pt")]
    assert len(curves) == 6 and all(sorted(c) == [2, 3, 5, 6] for c in curves)  # 3 x 2 seeds
