"""The study scripts' arithmetic (studies/*.py are run by hand; their numbers go in the README)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from featsel.defaults import RANK_CRITERION

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "studies" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sweep() -> dict:
    # 3 candidates, 2 seeds, metrics fd[e] and cond_fd[e]. Per seed: seed 0 ranks a 1, b 2, c 3
    # in both metrics; seed 1 ranks fd b 1, a 2, c 3 and cond_fd a 1, b 2, c 3, so a's mean FD
    # rank is 1 in seed 0 and 1.5 in seed 1: sd (ddof 1) = 0.5 / sqrt(2)
    return {"fd": {"a": {"e": [1, 2]}, "b": {"e": [2, 1]}, "c": {"e": [3, 3]}},
            "cond_fd": {"a": {"e": [1, 1]}, "b": {"e": [2, 2]}, "c": {"e": [3, 3]}},
            "fd_metrics": [{"metric": "fd[e]", "evaluation": "e"},
                           {"metric": "cond_fd[e]", "evaluation": "e"}],
            "metric_hacking": [], "controls": ["noise:dim=1"],
            # over the seed means: fd a 1.5, b 1.5 (tied), c 3; cond_fd a 1, b 2, c 3
            "mean_fd_rank": {"a": 1.25, "b": 1.75, "c": 3.0, "noise:dim=1": 0.5}}


def _selection(chosen: str) -> dict:
    return {"chosen": chosen, "complete": True, "stopped_at": {"a": 2, "b": 1, "c": 1},
            "timings": {"total_s": 10.0},
            "compute": {"candidate_steps": 50, "full_sweep_candidate_steps": 180,
                        "fraction": 50 / 180, "n_candidates": 3, "seeds": 2, "budget": 30}}


def test_select_regret_by_hand():
    m = _load("select_regret")
    r = m.compare(_selection("b"), _sweep())
    assert r["best"] == "a"  # the control (mean rank 0.5) is never the best
    assert r["regret"] == pytest.approx(0.5, abs=1e-12)
    assert r["per_candidate"]["a"]["per_seed"] == pytest.approx([1.0, 1.5], abs=1e-12)
    assert r["best_seed_sd"] == pytest.approx(0.5 / 2 ** 0.5, abs=1e-12)
    assert r["within_one_sd"] is False
    ok = m.compare(_selection("a"), _sweep())
    assert ok["regret"] == 0 and ok["within_one_sd"] is True
    assert ok["fraction"] == pytest.approx(50 / 180)


def test_select_regret_names_an_unknown_choice():
    m = _load("select_regret")
    with pytest.raises(SystemExit, match="--alias"):
        m.compare(_selection("elsewhere/vae.pt"), _sweep())
    assert m.compare(_selection("elsewhere/vae.pt"), _sweep(),
                     {"elsewhere/vae.pt": "c"})["regret"] == pytest.approx(1.75)


def test_summarize_pools_held_out_tests_by_hand():
    m = _load("summarize")
    val = _sweep()  # mean FD rank a 1.25, b 1.75, c 3
    fd, excl = m.fd_per_seed(val)
    cands = ["a", "b", "c"]
    # null_share (lower is better) orders a < b < c on the first set (tau +1) and b < a < c on
    # the second (tau +1/3); effective_rank (higher is better) is given only on the first
    first = ({"null_share": {"a": 0.1, "b": 0.2, "c": 0.3},
              "effective_rank": {"a": 3.0, "b": 2.0, "c": 1.0}}, fd, excl, cands)
    second = ({"null_share": {"a": 0.2, "b": 0.1, "c": 0.3}}, fd, excl, cands)
    datasets = {"x": {"null_share": {}, "effective_rank": {}, "_inputs": first},
                "y": {"null_share": {}, "_inputs": second}}
    pool = m.pooled(datasets, ["x", "y"])
    assert set(pool) == {"null_share"}  # a criterion missing on one data set is left out
    assert pool["null_share"]["kendall"] == pytest.approx([1.0, 1 / 3], abs=1e-12)
    assert pool["null_share"]["p"] == pytest.approx(5 / 36, abs=1e-12)  # as pooled_kendall_p
    assert m.pooled(datasets, ["x"])["effective_rank"]["kendall"] == pytest.approx([1.0])
    with pytest.raises(SystemExit, match="--pool"):
        m.pooled(datasets, ["x", "z"])


def test_summary_markdown_reports_the_secondary_pooled_reading_beside_the_primary():
    m = _load("summarize")
    r = {"kendall": 0.5, "ci_low": 0.1, "ci_high": 0.9, "kendall_p": 0.2, "n_candidates": 4,
         "n_seeds": 3}
    summary = {"recommended": "null_share",
               "datasets": {"x": {"null_share": r, "role": "held out"},
                            "y": {"null_share": r, "role": "held out"}},
               "pooled": {"null_share": {"datasets": ["x"], "mean_kendall": 0.5, "p": 0.2}},
               "pooled_secondary": {"null_share": {"datasets": ["x", "y"], "mean_kendall": 0.5,
                                                   "p": 0.1}}}
    md = m.markdown(summary)
    first, second = md.index("(x): mean"), md.index("(x, y): mean")
    assert first < second  # the pre-registered reading first
    assert "addendum 4, pre-registered): `null_share` (ranks) +0.50, p=0.2." in md
    assert "addenda 7, 8, 10, 12, 13 and 14, secondary): `null_share` (ranks) +0.50, p=0.1." in md
    del summary["pooled_secondary"]
    assert "addenda 7, 8, 10, 12, 13 and 14" not in m.markdown(summary)


def test_summary_markdown_reports_a_robustness_check_outside_the_tests():
    m = _load("summarize")
    r = {"kendall": 0.5, "ci_low": 0.1, "ci_high": 0.9, "kendall_p": 0.2, "n_candidates": 4,
         "n_seeds": 3}
    r5 = {**r, "kendall": 0.6, "n_seeds": 5}
    summary = {"recommended": "null_share",
               "datasets": {"x": {"null_share": r, "role": "held out"}},
               "robustness": {"x_5seeds": {"null_share": r5, "delta_ot": {**r, "kendall": -0.2},
                                           "role": "addendum 6"}}}
    md = m.markdown(summary)
    assert "x_5seeds" not in md.split("\n")[0]  # not a column of the tests' table
    assert ("Robustness check, not a test (x_5seeds: addendum 6, 4 real candidates, 5 seeds): "
            "`null_share` (ranks) +0.60 [+0.10, +0.90] p=0.20; every criterion: "
            "`null_share` +0.60; `delta_ot` -0.20.") in md
    del summary["robustness"]
    assert "Robustness" not in m.markdown(summary)


def test_slim_score_keeps_the_ranking_settings_and_versions(tmp_path):
    import json

    m = _load("summarize")
    full = {"title": "t", "settings": {"n": 8}, "versions": {"cpu": "x", "torch": "2"},
            "ranking": {"order": ["a"]}, "timings": {"s": 1.0}, "diagnostics": {"a": [0] * 99}}
    (tmp_path / "results.json").write_text(json.dumps(full))
    m.slim_score(tmp_path / "results.json", tmp_path / "slim.json")
    slim = json.loads((tmp_path / "slim.json").read_text())
    assert slim == {k: full[k] for k in ("title", "settings", "versions", "ranking", "timings")}
    assert not (tmp_path / "slim.json.tmp").exists()


def _study_folder(folder: Path, values: dict[str, float],
                  criteria: tuple[str, ...] = ("null_share",)) -> Path:
    """A study folder whose score gives every criterion in ``criteria`` the same ``values``."""
    import json

    folder.mkdir(parents=True)
    val = {**_sweep(), "settings": {"candidates": ["a", "b", "c"]}, "controls": []}
    (folder / "validation.json").write_text(json.dumps(val))
    ranking = {"candidates": {c: {"criteria": {k: {"mean": v} for k in criteria}}
                              for c, v in values.items()},
               "controls": [], "validity": {k: {"valid": True} for k in criteria}}
    (folder / "score_ranking.json").write_text(json.dumps({"ranking": ranking}))
    return folder


def test_summarize_keeps_a_robustness_check_out_of_the_tests_and_the_evidence(tmp_path):
    import json
    import subprocess
    import sys

    both = tuple(dict.fromkeys(("null_share", RANK_CRITERION)))  # the evidence's criterion too
    test = _study_folder(tmp_path / "x", {"a": 0.1, "b": 0.2, "c": 0.3}, both)
    check = _study_folder(tmp_path / "x5", {"a": 0.2, "b": 0.1, "c": 0.3}, both)
    out, ev = tmp_path / "summary.json", tmp_path / "evidence.json"
    cmd = [sys.executable, str(ROOT / "studies" / "summarize.py"), "--out", str(out),
           "--study", f"x={test}", "--pool", "x", "--evidence", str(ev)]
    run = subprocess.run([*cmd, "--robustness", f"x_5seeds={check}"], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    summary, evidence = json.loads(out.read_text()), json.loads(ev.read_text())
    assert list(summary["datasets"]) == ["x"] and list(summary["robustness"]) == ["x_5seeds"]
    assert summary["datasets"]["x"]["null_share"]["kendall"] == pytest.approx(1.0)
    assert summary["robustness"]["x_5seeds"]["null_share"]["kendall"] == pytest.approx(1 / 3)
    assert summary["pooled"]["null_share"]["datasets"] == ["x"]
    assert list(evidence["datasets"]) == ["x"] and "x_5seeds" not in json.dumps(evidence)
    clash = subprocess.run([*cmd, "--robustness", f"x={check}"], capture_output=True,
                           text=True, cwd=ROOT)
    assert clash.returncode != 0 and "--robustness: 'x' is already a --study name" in clash.stderr


def test_summarize_reads_a_named_pool_beside_the_others(tmp_path):
    """--pool-named LABEL=a,b (addendum 13): the same reading as --pool over another list, in
    summary.json's pooled_named and summary.md; the pre-registered readings are unchanged."""
    import json
    import subprocess
    import sys

    x = _study_folder(tmp_path / "x", {"a": 0.1, "b": 0.2, "c": 0.3})  # tau +1
    y = _study_folder(tmp_path / "y", {"a": 0.2, "b": 0.1, "c": 0.3})  # tau +1/3
    out = tmp_path / "summary.json"
    cmd = [sys.executable, str(ROOT / "studies" / "summarize.py"), "--out", str(out),
           "--study", f"x={x}", "--study", f"y={y}", "--pool", "x"]
    run = subprocess.run([*cmd, "--pool-named", "two=x,y"], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr
    summary = json.loads(out.read_text())
    assert summary["pooled"]["null_share"]["datasets"] == ["x"]
    two = summary["pooled_named"]["two"]["null_share"]
    assert two["datasets"] == ["x", "y"] and two["p"] == pytest.approx(5 / 36, abs=1e-12)
    assert "two: the held-out tests x, y read together the same way: `null_share` +0.67, p=0.14" \
        in out.with_suffix(".md").read_text()
    bad = subprocess.run([*cmd, "--pool-named", "two"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "--pool-named: expected LABEL=A,B,C" in bad.stderr


def test_summarize_evidence_reads_the_ranking_criterions_own_held_out_tests(tmp_path):
    """--evidence-held-out y (addendum 13): a criterion chosen after x had been seen is judged
    on y alone; the evidence file marks x as seen and reads y as its held-out test."""
    import json
    import subprocess
    import sys

    x = _study_folder(tmp_path / "x", {"a": 0.1, "b": 0.2, "c": 0.3}, (RANK_CRITERION,))
    y = _study_folder(tmp_path / "y", {"a": 0.2, "b": 0.1, "c": 0.3}, (RANK_CRITERION,))
    out, ev = tmp_path / "summary.json", tmp_path / "evidence.json"
    cmd = [sys.executable, str(ROOT / "studies" / "summarize.py"), "--out", str(out),
           "--study", f"x={x}", "--study", f"y={y}", "--role", "y=held out (test)",
           "--pool", "x,y", "--pool-also", "x,y", "--evidence", str(ev)]
    run = subprocess.run([*cmd, "--evidence-held-out", "y"], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr
    summary, evidence = json.loads(out.read_text()), json.loads(ev.read_text())
    assert summary["recommended_held_out"] == ["y"]
    assert evidence["datasets"]["x"]["role"] == f"selection (seen when {RANK_CRITERION} was chosen)"
    assert evidence["datasets"]["y"]["role"] == "held out (test)"
    # one data set of 3 candidates at tau 1/3: 3 of the 6 orders agree as well (exact p 1/2)
    assert evidence["pooled_held_out"] == {"datasets": ["y"], "mean_kendall": pytest.approx(1 / 3),
                                           "p": pytest.approx(0.5, abs=1e-12)}
    assert "pooled_held_out_secondary" not in evidence
    assert summary["pooled"][RANK_CRITERION]["datasets"] == ["x", "y"]  # the others unchanged
    bad = subprocess.run([*cmd, "--evidence-held-out", "z"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode != 0 and "--evidence-held-out: ['z'] have no" in bad.stderr
    # --evidence-replication (addendum 14): read together and said in words against p < 0.05
    run = subprocess.run([*cmd, "--evidence-held-out", "y", "--evidence-replication", "add=y"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    rep = json.loads(ev.read_text())["replication"]
    assert rep == {"label": "add", "datasets": ["y"], "mean_kendall": pytest.approx(1 / 3),
                   "p": pytest.approx(0.5, abs=1e-12), "bar_p": 0.05, "held": False}
    bad = subprocess.run([*cmd, "--evidence-replication", "y"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode != 0 and "--evidence-replication: expected LABEL=A,B" in bad.stderr


def test_summarize_fills_in_a_criterion_from_a_values_file_matched_by_validation(tmp_path):
    import json
    import subprocess
    import sys

    test = _study_folder(tmp_path / "x", {"a": 0.1, "b": 0.2, "c": 0.3})
    other = _study_folder(tmp_path / "y", {"a": 0.1, "b": 0.2, "c": 0.3})
    score = json.loads((test / "score_ranking.json").read_text())
    score["ranking"]["controls"] = ["noise:dim=1"]
    (test / "score_ranking.json").write_text(json.dumps(score))
    values = {"x, under another name": {
        "validation": str(test / "validation.json"),
        "values": {"a": {"mean": 0.3}, "b": {"mean": 0.2}, "c": {"mean": 0.1},
                   "noise:dim=1": {"mean": 1.0}}}}
    vf = tmp_path / "values.json"
    vf.write_text(json.dumps(values))
    out = tmp_path / "summary.json"
    run = subprocess.run([sys.executable, str(ROOT / "studies" / "summarize.py"), "--out",
                          str(out), "--study", f"x={test}", "--study", f"y={other}",
                          "--values", f"inversion_share={vf}", "--note", "a *note*"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    summary = json.loads(out.read_text())
    x, y = summary["datasets"]["x"], summary["datasets"]["y"]
    assert x["inversion_share"]["kendall"] == pytest.approx(-1.0)  # the reverse of the outcome
    assert x["controls_last"]["inversion_share"] is True
    assert x["null_share"]["kendall"] == pytest.approx(1.0)  # the score's own, untouched
    assert "inversion_share" not in y  # no entry read against y's outcome
    assert summary["notes"] == ["a *note*"] and out.with_suffix(".md").read_text().rstrip(
        ).endswith("a *note*")
    bad = subprocess.run([sys.executable, str(ROOT / "studies" / "summarize.py"), "--out",
                          str(out), "--study", f"x={test}", "--values", f"nope={vf}"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "--values: expected CRITERION=FILE" in bad.stderr


@pytest.mark.parametrize("study, dims", [("phoneme", (3, 2, 4)), ("ring", (8, 4, 6)),
                                         ("magic", (4, 2, 3)), ("indian_pines", (16, 4, 8)),
                                         ("twonorm", (8, 4, 6)), ("marketing", (4, 2, 3))])
def test_vector_study_scripts_run_the_pre_registered_commands(tmp_path, study, dims):
    """studies/<study>/run.sh through studies/vector_study.sh, dry (PYTHON=echo): three VAEs
    (HI and LO latent dims, seed 0; MID, seed 1, for evaluation), then select and validate with
    the six candidates, the three evaluation spaces, 5 seeds x 800 steps (PROTOCOL addenda
    12-15)."""
    import os
    import subprocess

    hi, lo, mid = dims
    run = tmp_path / "run"
    out = subprocess.run(["bash", str(ROOT / "studies" / study / "run.sh"), str(run)],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHON": "echo"})
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stdout.splitlines() if x.startswith("-m featsel.cli")]
    assert len(lines) == 5
    for line, (dim, seed) in zip(lines[:3], ((hi, 0), (lo, 0), (mid, 1))):
        assert f"pretrain vae --data {study} --split train" in line
        assert f"--set latent_dim={dim} --set kl_weight=1e-3 --seed {seed}" in line
    cands = (f"pca:dim={hi},pca:dim={lo},random-projection:dim={hi},random-projection:dim={lo},"
             f"{run}/vae{hi}/featurizer.pt,{run}/vae{lo}/featurizer.pt")
    evals = f"ambient,pca:dim={mid},{run}/vae{mid}_eval/featurizer.pt"
    for line, cmd in zip(lines[3:], ("select", "validate")):
        assert line.startswith(f"-m featsel.cli {cmd} --data {study} --config "
                               f"configs/{study}_mlp.yaml --set space=ambient")
        assert f"--featurizers {cands} --eval-featurizers {evals}" in line
        assert "--budget 800 --seeds 5" in line and "--score-flow --score-inversion" in line
    assert "--executor local" in lines[3]


def test_first_choice_regret_by_hand():
    """Mean FD rank over seeds: fd[e] a 1.5, b 1.5, c 3 -> ranks 1.5, 1.5, 3; cond_fd[e] a 1,
    b 2, c 3 -> a 1.25, b 1.75, c 3: the best is a. Within seed 0 a's mean rank is 1, in seed 1
    1.5: sd (ddof 1) = 0.5 / sqrt(2)."""
    m = _load("summarize")
    fd = {"a": {"fd[e]": [1, 2], "cond_fd[e]": [1, 1]}, "b": {"fd[e]": [2, 1], "cond_fd[e]": [2, 2]},
          "c": {"fd[e]": [3, 3], "cond_fd[e]": [3, 3]}}
    r = m.first_choice_regret({"a": 0.3, "b": 0.1, "c": 0.2}, fd, set(), ["a", "b", "c"], True)
    assert r["first"] == ["b"] and r["best"] == "a"
    assert r["regret"] == pytest.approx(0.5) and r["best_seed_sd"] == pytest.approx(0.5 / 2 ** 0.5)
    # higher is better: c first, regret 3 - 1.25
    r = m.first_choice_regret({"a": 0.3, "b": 0.1, "c": 0.9}, fd, set(), ["a", "b", "c"], False)
    assert r["first"] == ["c"] and r["regret"] == pytest.approx(1.75)
    # a tie on the criterion's value shares the first place: the mean of their regrets
    r = m.first_choice_regret({"a": 0.1, "b": 0.1, "c": 0.2}, fd, set(), ["a", "b", "c"], True)
    assert r["first"] == ["a", "b"] and r["regret"] == pytest.approx(0.25)
    # the best named: 0
    assert m.first_choice_regret({"a": 0.0, "b": 0.1, "c": 0.2}, fd, set(), ["a", "b", "c"],
                                 True)["regret"] == 0.0


def _probe_inputs() -> tuple[dict, dict]:
    """A sweep of 4 candidates x 2 identical seeds whose outcome order is a, b, c, d (mean FD
    ranks 1, 2, 3, 4), and a selection whose rung 1 ranks b, a, c, d (b and a swapped). The
    VAE's file and the evaluation VAE sit in other folders in the two, as in studies/satimage."""
    vae_s, vae_v = "/tmp/sel/vae/featurizer.pt", "runs/study/vae/featurizer.pt"
    ev_s, ev_v = "/tmp/sel/vae_eval/featurizer.pt", "runs/study/vae_eval/featurizer.pt"
    final = {"a": 1.0, "b": 2.0, "c": 3.0, vae_v: 4.0}
    early = {"a": 2.0, "b": 1.0, "c": 3.0, vae_s: 4.0}
    val = {"fd": {c: {ev_v: [v, v]} for c, v in final.items()},
           "cond_fd": {c: {ev_v: [v, v]} for c, v in final.items()},
           "fd_metrics": [{"metric": f"fd[{ev_v}]", "evaluation": ev_v},
                          {"metric": f"cond_fd[{ev_v}]", "evaluation": ev_v}],
           "metric_hacking": [], "controls": [],
           "settings": {"candidates": list(final)}}
    metrics = [f"fd[{ev_s}]", f"cond_fd[{ev_s}]"]
    sel = {"compute": {"budget": 90, "full_sweep_candidate_steps": 720},
           "prior": {"order": list(early)},
           "rungs": [{"steps": 10, "candidate_steps": 80, "candidates": list(early),
                      "kept": ["b", "a"],
                      "metrics": metrics,
                      "fd": {c: {m: [v, v] for m in metrics} for c, v in early.items()},
                      "collapsed": {c: [False, False] for c in early},
                      "mean_rank": dict(early)}]}
    return sel, val


def test_probe_reads_rung_one_against_the_sweep_by_hand():
    m = _load("probe")
    sel, val = _probe_inputs()
    r = m.analyse(sel, val, n_boot=50)
    # probe b, a, c, d against outcome a, b, c, d: 5 of 6 pairs concordant, tau = 4/6; exact
    # one-sided p = orders of 4 with at most one inversion (1 + 3) / 24
    assert r["kendall"] == pytest.approx(2 / 3) and r["kendall_p"] == pytest.approx(4 / 24)
    assert r["ci_low"] == pytest.approx(2 / 3) and r["ci_high"] == pytest.approx(2 / 3)
    assert r["probe_fraction"] == pytest.approx(80 / 720) and r["n_seeds"] == 2
    # its first choice b has outcome rank 2, the best a 1; a's per-seed ranks (1, 1): sd 0
    assert r["first_first"] == ["b"] and r["first_regret"] == pytest.approx(1.0)
    assert r["first_best_seed_sd"] == pytest.approx(0.0)
    d = r["disjoint"]  # 2 seeds: probe on one, outcome on the other, both ways
    assert d["n_splits"] == 2 and d["mean_kendall"] == pytest.approx(2 / 3)
    assert d["first_is_best_share"] == 0.0 and d["mean_regret"] == pytest.approx(1.0)
    assert r["one_seed"]["mean_kendall"] == pytest.approx(2 / 3)  # each seed against the other
    assert "runs/study/vae/featurizer.pt" in r["candidates"]


def test_probe_refuses_a_rung_whose_stored_order_it_cannot_reproduce():
    m = _load("probe")
    sel, val = _probe_inputs()
    sel["rungs"][0]["mean_rank"]["a"] = 1.0
    with pytest.raises(SystemExit, match="stored mean_rank differs"):
        m.analyse(sel, val, n_boot=5)
    with pytest.raises(SystemExit, match="2 matches"):
        m.match_names(["x/vae/featurizer.pt"], ["a/vae/featurizer.pt", "b/vae/featurizer.pt"])


def test_probe_without_the_vae_couplings_by_hand(tmp_path):
    """The reading without MLP VAE couplings: the VAE (a ``vae*`` folder's featurizer file) left
    out, the outcome recomputed over a, b, c (1, 2, 3); the probe's b, a, c gives 1/3, a
    criterion ordering a, b, c gives +1, and a file that is not a VAE stays."""
    m = _load("probe")
    sel, val = _probe_inputs()
    assert m.is_mlp_vae("runs/study/vae/featurizer.pt") and m.is_mlp_vae("r/vae16/featurizer.pt")
    assert not m.is_mlp_vae("runs/mnist6/mae0.75/featurizer.pt") and not m.is_mlp_vae("pca:dim=8")
    crit = {"inversion_share": {"a": 0.1, "b": 0.2, "c": 0.3, "runs/study/vae/featurizer.pt": 0.0},
            "null_share": {"a": 0.3, "b": 0.2, "c": 0.1, "runs/study/vae/featurizer.pt": 0.0}}
    score = {"ranking": {"controls": [], "candidates": {
        c: {"criteria": {k: {"mean": v[c]} for k, v in crit.items()}}
        for c in val["settings"]["candidates"]}}}
    (tmp_path / "score_ranking.json").write_text(json.dumps(score))
    r = m.without_vae(sel, val, tmp_path, {})
    assert r["left_out"] == ["runs/study/vae/featurizer.pt"] and r["n_candidates"] == 3
    assert r["probe"] == pytest.approx(1 / 3)
    assert r["inversion_share"] == pytest.approx(1.0) and r["null_share"] == pytest.approx(-1.0)


@pytest.mark.parametrize("study, extra", [("penbased", ""), ("letter", ""), ("segment", ""),
                                          ("vehicle", " --score-inversion")])
def test_ambient_study_scripts_run_the_pre_registered_commands(tmp_path, study, extra):
    """studies/<study>/run.sh through studies/ambient_study.sh, dry (PYTHON=echo): the 8-d VAE,
    then select and validate with ambient, PCA-8, PCA-3, random projections to 8 and 3 and the
    VAE, evaluated in ambient, PCA-4 and the VAE latent, 5 seeds x 800 steps (PROTOCOL addenda 4,
    7, 8 and 10; vehicle also scores the inversion share)."""
    import os
    import subprocess

    run = tmp_path / "run"
    out = subprocess.run(["bash", str(ROOT / "studies" / study / "run.sh"), str(run)],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHON": "echo"})
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stdout.splitlines() if x.startswith("-m featsel.cli")]
    assert len(lines) == 3
    assert lines[0] == (f"-m featsel.cli pretrain vae --data {study} --split train --out "
                        f"{run}/vae --set latent_dim=8 --set kl_weight=1e-3 --quiet")
    vae = f"{run}/vae/featurizer.pt"
    args = (f"--data {study} --config configs/{study}_mlp.yaml --set space=ambient --featurizers "
            f"ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,random-projection:dim=3,{vae} "
            f"--eval-featurizers ambient,pca:dim=4,{vae} --budget 800 --seeds 5 --jobs 2 "
            f"--resume --score-flow{extra} --out {run}/sweep")
    assert lines[1] == f"-m featsel.cli select {args} --executor local --quiet"
    assert lines[2] == f"-m featsel.cli validate {args}"


def test_reliability_rows_match_a_brute_force_reading_of_the_committed_sweeps(tmp_path):
    """studies/reliability.py on the committed sweeps: one row recomputed by brute force (every
    2-of-5 seed split, the halves' Table 4 ranks, scipy's Kendall), the probe's column taken
    from studies/probe/results.json, and the table and files written."""
    import itertools

    from scipy.stats import kendalltau

    from featsel.confirmation import mean_fd_over_seeds, mean_fd_rank_excluding

    m = _load("reliability")
    probe = json.loads((ROOT / "studies" / "probe" / "results.json").read_text())
    res = m.run(probe=probe, n_boot=100, values=m.read_values(
        [f"inversion_share={ROOT / 'studies' / 'inversion' / 'results.json'}"]))
    assert "pbmc68k/ambient" not in res["datasets"]  # no --selection: left out
    vals, fd, excl, _, real, _, _ = m.study_inputs(ROOT / "studies" / "phoneme" / "results")

    rung = _load("probe").aligned(
        json.loads((ROOT / "studies" / "phoneme" / "select" / "selection.json").read_text()),
        json.loads((ROOT / "studies" / "phoneme" / "results" / "validation.json").read_text()))

    def ranks(seeds, fd=fd):
        sub = {c: {k: [v[s] for s in seeds] for k, v in fd[c].items()} for c in real}
        r = mean_fd_rank_excluding(mean_fd_over_seeds(sub), excl)["mean_rank"]
        return [r[c] for c in real]

    own, crit, early = [], [], []
    for a in itertools.combinations(range(5), 2):
        held = ranks([s for s in range(5) if s not in a])
        own.append(kendalltau(ranks(a), held).statistic)
        crit.append(kendalltau([vals["null_share"][c] for c in real], held).statistic)
        early.append(kendalltau(ranks(a, rung["probe_fd"]),
                                ranks([s for s in range(5) if s not in a], rung["probe_fd"]))
                     .statistic)
    row = res["datasets"]["phoneme"]
    assert row["seeds"] == [2, 3] and row["n_splits"] == 10 and row["n_candidates"] == 6
    assert row["outcome"] == pytest.approx(sum(own) / 10, abs=1e-12)
    assert row["null_share"] == pytest.approx(sum(crit) / 10, abs=1e-12)
    assert row["probe_self"] == pytest.approx(sum(early) / 10, abs=1e-12)
    assert row["probe"] == probe["studies"]["phoneme"]["disjoint"]["mean_kendall"]
    assert res["datasets"]["mnist"]["seeds"] == [1, 2]
    # rung 1's cut: keep shares sum to the two it kept; on MNIST the sweep's best (the MAE)
    # was stopped in every resample of the seeds (the README's reading)
    assert sum(row["rung1_keep_share"].values()) == pytest.approx(2)
    mn = res["datasets"]["mnist"]
    assert "mae" in mn["rung1_best"] and mn["rung1_best_share"] == 0.0
    m.main(["--out", str(tmp_path / "r.json"), "--md", str(tmp_path / "t.md"),
            "--n-boot", "100"])
    assert json.loads((tmp_path / "r.json").read_text())["datasets"]["phoneme"] == row
    assert "| phoneme | 6 | 2 vs 3 |" in (tmp_path / "t.md").read_text()
    with pytest.raises(SystemExit, match="--selection: no"):
        m.main(["--selection", str(tmp_path / "nowhere")])
