"""`featsel score` and `featsel report` end to end on the bundled digits data, and bad inputs."""

import json

import pandas as pd
import pytest

from featsel.cli import main
from featsel.defaults import RANK_CRITERION

FAST = ["--data", "digits", "--max-samples", "600", "--repeats", "2", "--recipe", "paper",
        "--no-curve", "--no-cache", "--quiet", "--taus", "0.05,0.2"]


def test_score_end_to_end_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["score", *FAST, "--featurizers", "pca:dim=8,random-projection:dim=8",
               "--eval-featurizers", "pca:dim=8,identity", "--out", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    res = json.loads((out / "results.json").read_text())
    assert printed["ranking"]["order"] == res["ranking"]["order"]
    assert "diagnostics" not in printed and printed["results"] == str(out / "results.json")
    # the two candidates and the two noise controls added by default (the largest block: 8-d)
    assert sorted(res["ranking"]["order"]) == ["noise:dim=1", "noise:dim=8", "pca:dim=8",
                                               "random-projection:dim=8"]
    rk = res["ranking"]
    assert sorted(rk["controls"]) == ["noise:dim=1", "noise:dim=8"]
    assert res["settings"]["controls"] == ["noise:dim=1", "noise:dim=8"]
    assert rk["criterion"] == RANK_CRITERION == "inversion_share"  # studies/PROTOCOL.md, add. 13
    assert rk["recommended"] in ("pca:dim=8", "random-projection:dim=8")
    assert rk["valid"] and sorted(rk["order"][-2:]) == ["noise:dim=1", "noise:dim=8"]
    # every registered criterion is computed, with its control check
    assert {"transport_fidelity", "delta_ot", "null_share", "effective_rank",
            "inversion_share"} <= set(rk["validity"])  # the one that ranks is computed too
    pc = res["diagnostics"]["pca:dim=8"]["criteria"]["transport_fidelity"]
    assert 0 < pc["mean"] < 1 and pc["perplexity"] == pytest.approx(4.0, rel=0.1)
    df = pd.read_csv(out / "results.csv")
    assert list(df["candidate"]) == res["ranking"]["order"]
    d = res["diagnostics"]["pca:dim=8"]
    assert set(d["stability"]["per_tau"]) == {"0.05", "0.2"}
    assert 0 < d["stability"]["per_tau"]["0.05"]["mean"] < 2
    assert d["rank"]["effective_rank"] > 1
    assert d["coupling"]["same_class_mass"] > d["coupling"]["chance"]
    # the candidate is the same network as the evaluation featurizer pca:dim=8
    flags = res["ranking"]["flags"]
    assert any(f["candidate"] == "pca:dim=8" and f["evaluation"] == "pca:dim=8" for f in flags)
    html = (out / "report.html").read_text()
    assert 'id="ranking-table"' in html and "random-projection:dim=8" in html
    assert 'class="control"' in html and 'id="validity"' in html and 'id="evidence"' in html
    assert res["evidence"]["criterion"] == rk["criterion"]
    if res["evidence"].get("pooled_held_out"):  # the shipped evidence reads them together
        assert "held-out\n tests together (" in html
    if res["evidence"].get("pooled_held_out_secondary"):
        assert "Every\n held-out test so far (" in html
    if res["evidence"].get("replication"):  # addendum 14, in words
        held = "held" if res["evidence"]["replication"]["held"] else "did not hold"
        assert "Its pre-registered\n replication (" in html and f"<strong>{held}</strong>" in html
    if res["evidence"].get("probe"):  # addendum 15: the short training probe beside it
        assert 'id="probe"' in html and "first rung, every candidate and seed" in html
        if res["evidence"]["probe"].get("test"):
            held = "held" if res["evidence"]["probe"]["test"]["held"] else "did not hold"
            assert f"<strong>{held}</strong>" in html.split('id="probe"')[1]
    assert {p.name for p in (out / "figures").iterdir()} >= {"ranking.png", "alignment_r2.png"}
    assert (out.stat().st_mode & 0o777) == 0o755  # readable by others, like the files in it
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--featurizers", "no-such-featurizer"], "unknown featurizer"),
    (["--featurizers", "pca:dim=8", "--n", "40"], "too large"),
    (["--featurizers", "pca:dim=8", "--tau", "0.02"], "--tau"),
    (["--featurizers", "pca:dim=8,noise:dim=0"], "dim must be >= 1"),
    (["--featurizers", "pca:dim=8", "--max-samples", "40"], "too few samples per class"),
    (["--featurizers", "pca:dim=8", "--perplexity", "0.5"], "--perplexity: expected"),
    (["--featurizers", "pca:dim=8", "--repeats", "0"], "--repeats: expected"),
])
def test_bad_inputs_leave_no_output(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    rc = main(["score", *FAST, "--eval-featurizers", "none", "--out", str(out), *extra])
    assert rc == 1
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_report_without_results_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "results.json" in capsys.readouterr().err


def test_unknown_criterion_is_one_clear_error(tmp_path):
    from featsel.score import ScoreConfig, run_score

    with pytest.raises(ValueError, match="criterion: unknown 'bogus'; known: "):
        run_score(ScoreConfig(featurizers=["pca:dim=8"], criterion="bogus"), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_data_root_is_accepted(tmp_path, monkeypatch, capsys):
    # the README and the missing-file error advertise --data-root: score takes it
    monkeypatch.setenv("FEATSEL_DATA_DIR", str(tmp_path / "nowhere"))
    rc = main(["score", "--data", "mnist", "--split", "test", "--data-root",
               str(tmp_path / "elsewhere"), "--out", str(tmp_path / "o")])
    assert rc == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "elsewhere" / "mnist") in err and "Traceback" not in err


def test_shipped_evidence_is_the_studies_summary():
    # featsel/evidence.json (shown in every report) is written by studies/summarize.py from
    # studies/summary.json: the same numbers, for the criterion that ranks by default
    from pathlib import Path

    from featsel.defaults import RANK_CRITERION
    from featsel.score import evidence

    root = Path(__file__).resolve().parents[1]
    summary = json.loads((root / "studies" / "summary.json").read_text())
    ev = evidence()
    assert ev["criterion"] == summary["recommended"] == RANK_CRITERION
    assert set(ev["datasets"]) == {d for d, v in summary["datasets"].items() if RANK_CRITERION in v}
    for d, e in ev["datasets"].items():
        want = summary["datasets"][d][RANK_CRITERION]
        assert (e["kendall"], e["ci_low"], e["ci_high"]) == (
            want["kendall"], want["ci_low"], want["ci_high"])
    # the held-out tests read together: summary.json's pooled numbers (PROTOCOL addendum 4's
    # list), or, for a criterion chosen after the others had been seen (addendum 13), its own
    # held-out tests (a pooled_named entry), every other data set marked as seen
    held = summary.get("recommended_held_out")
    if held:
        pool = next(p[RANK_CRITERION] for p in summary["pooled_named"].values()
                    if p[RANK_CRITERION]["datasets"] == held)
        assert "pooled_held_out_secondary" not in ev
        for d, e in ev["datasets"].items():
            assert e["role"].startswith("selection") == (d not in held), (d, e["role"])
    else:
        pool = summary["pooled"][RANK_CRITERION]
    assert ev["pooled_held_out"] == {k: pool[k] for k in ("datasets", "mean_kendall", "p")}
    assert pool["p"] < 0.05  # the pre-registered bar of the criterion that ranks
    assert all(not summary["datasets"][d]["role"].startswith("selection") for d in pool["datasets"])
    if "replication" in ev:  # addendum 14: a pre-registered replication, said in words
        rep = ev["replication"]
        want = next(p[RANK_CRITERION] for p in summary["pooled_named"].values()
                    if p[RANK_CRITERION]["datasets"] == rep["datasets"])
        assert (rep["mean_kendall"], rep["p"]) == (want["mean_kendall"], want["p"])
        assert rep["held"] == (rep["p"] < rep["bar_p"] == 0.05)
        assert set(rep["datasets"]) <= set(ev["pooled_held_out"]["datasets"])
    if "pooled_held_out_secondary" in ev:  # addendum 7's reading beside it, held-out sets only
        pool2 = summary["pooled_secondary"][RANK_CRITERION]
        assert ev["pooled_held_out_secondary"] == {k: pool2[k]
                                                   for k in ("datasets", "mean_kendall", "p")}
        assert set(pool["datasets"]) < set(pool2["datasets"])
        assert all(not summary["datasets"][d]["role"].startswith("selection")
                   for d in pool2["datasets"])


def test_progress_names_the_stage_and_the_draw(tmp_path, capsys):
    """Issue 16: the bar moved per candidate only (it sat at 2/3 for 21 minutes on MNIST)."""
    args = [a for a in FAST if a != "--quiet"]
    assert main(["score", *args, "--featurizers", "pca:dim=4", "--eval-featurizers", "none",
                 "--no-controls"]) == 0
    err = capsys.readouterr().err
    for text in ("pca:dim=4 · transport_fidelity draw 1/", "target_stability draw",
                 "Delta_OT draw 2/2", "alignment R^2", "100%"):
        assert text in err, text


def test_score_text_says_tied(monkeypatch, capsys):
    """The printed summary names a tie the way the report does (the ranking decides it)."""
    import featsel.score

    def fake_run_score(cfg, out, force=False):
        expl = {"pca:dim=8": "1st of 2", "identity": "2nd of 2"}
        table = [{"rank": i + 1, "candidate": c} for i, c in enumerate(expl)]
        return {"ranking": {"table": table, "explanations": expl, "recommended": "pca:dim=8",
                            "tied_best": ["identity"], "tie_break": "more draws narrow the "
                            "intervals (rerun with a larger --repeats)"}}

    monkeypatch.setattr(featsel.score, "run_score", fake_run_score)
    assert main(["score", "--featurizers", "pca:dim=8,identity", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert ("recommended: pca:dim=8, tied with identity (intervals overlap): more draws narrow "
            "the intervals (rerun with a larger --repeats)") in out
    assert "caution:" not in out


def test_score_text_prints_the_caution(monkeypatch, capsys):
    import featsel.score

    def fake_run_score(cfg, out, force=False):
        table = [{"rank": 1, "candidate": "identity"}]
        return {"ranking": {"table": table, "explanations": {"identity": "1st of 1"},
                            "recommended": "identity", "caution": "identity has effective "
                            "rank 0.98 (below 2): ..."}}

    monkeypatch.setattr(featsel.score, "run_score", fake_run_score)
    assert main(["score", "--featurizers", "identity", "--quiet"]) == 0
    assert "caution: identity has effective rank 0.98 (below 2)" in capsys.readouterr().out


def _score_parser():
    import argparse

    from featsel.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["score"]


def test_score_flags_are_the_config_fields_with_their_defaults():
    """Every ScoreConfig field has a flag storing into its name with its default (but for the
    documented API-only ones), and every flag sets a field (but for --out, --force, --json)."""
    from dataclasses import fields

    from featsel.cli import SCORE_API_ONLY
    from featsel.score import ScoreConfig

    actions = {a.dest: a for a in _score_parser()._actions}
    default = ScoreConfig()
    names = [f.name for f in fields(ScoreConfig)]
    assert set(SCORE_API_ONLY) <= set(names) and not set(SCORE_API_ONLY) & set(actions)
    for name in names:
        if name not in SCORE_API_ONLY:
            assert name in actions, f"ScoreConfig.{name}: no flag (nor in SCORE_API_ONLY)"
            assert actions[name].default == getattr(default, name), name
    assert set(actions) - set(names) == {"help", "json", "out", "force"}


def test_score_flags_reach_the_config(monkeypatch, capsys):
    import featsel.score
    from featsel.score import ScoreConfig

    seen = []

    def fake_run_score(cfg, out, force=False):
        seen.append(cfg)
        return {}

    monkeypatch.setattr(featsel.score, "run_score", fake_run_score)
    assert main(["score", "--json"]) == 0
    assert seen.pop() == ScoreConfig()  # no flag: every default, as the Python API has them
    assert main(["score", "--json", "--repeats", "3", "--no-controls", "--curve", "--no-cache",
                 "--flow",
                 "--quiet", "--eval-featurizers", "none", "--max-locations", "0", "--taus",
                 "0.05,0.2", "--featurizers", "pca:dim=8,vit:depth=2,tap_every=1"]) == 0
    cfg = seen.pop()
    assert (cfg.n_repeats, cfg.controls, cfg.curve, cfg.cache, cfg.progress, cfg.flow) == (
        3, False, True, False, False, True)
    assert cfg.evaluations == [] and cfg.max_locations is None and cfg.taus == (0.05, 0.2)
    assert cfg.featurizers == ["pca:dim=8", "vit:depth=2,tap_every=1"]


def test_replication_line_says_whether_it_held():
    from featsel.cli import _replication_text

    rep = {"label": "addendum 14", "datasets": ["phoneme", "ring"], "mean_kendall": 0.4,
           "p": 0.0729, "bar_p": 0.05, "held": False}
    assert _replication_text(rep) == ("; its replication (addendum 14: phoneme, ring): mean "
                                      "+0.40, p = 0.073, did not hold (bar p < 0.05)")
    assert _replication_text({**rep, "p": 0.01, "held": True}).endswith("p = 0.01, held")
    assert _replication_text(None) == ""


def test_probe_line_gives_its_cost_its_reading_after_the_fact_and_its_test():
    from featsel.cli import _probe_text

    probe = {"fraction": 0.111, "after_the_fact": {
        "datasets": list("abcdefghij"), "mean_kendall": 0.70, "p": 3e-11,
        "best_criterion": {"name": "inversion_share", "mean_kendall": 0.53, "n": 9}}}
    assert _probe_text(probe) == (
        "a short training probe, featsel select's first rung (11% of a full sweep's training), "
        "agreed with the trained outcome at Kendall mean +0.70 over 10 data sets, read after the "
        "fact (the best training-free criterion there: inversion_share +0.53 over 9); featsel "
        "select trains it and keeps the best third")
    test = {"label": "addendum 15", "datasets": ["twonorm", "marketing"], "mean_kendall": 0.3,
            "p": 0.2, "bar_p": 0.05, "held": False}
    assert ("; its pre-registered test (addendum 15: twonorm, marketing): mean +0.30, p = 0.2, "
            "did not hold (bar p < 0.05);") in _probe_text({**probe, "test": test})
    assert "p = 0.01, held;" in _probe_text({**probe, "test": {**test, "p": 0.01, "held": True}})
    crit = {"name": "inversion_share", "mean_kendall": 0.73, "n": 2}
    assert "held (inversion_share on the same data: +0.73);" in _probe_text(
        {**probe, "test": {**test, "p": 0.01, "held": True, "ranking_criterion": crit}})


def test_shipped_probe_evidence_is_the_probe_study():
    # featsel/evidence.json's probe entry is studies/probe.py's reading of the committed studies
    from pathlib import Path

    from featsel.score import evidence

    root = Path(__file__).resolve().parents[1]
    res = json.loads((root / "studies" / "probe" / "results.json").read_text())
    probe = evidence().get("probe")
    assert probe is not None
    late = res["pooled"]["held out"]
    assert {k: probe["after_the_fact"][k] for k in late if k in probe["after_the_fact"]} == {
        k: late[k] for k in ("datasets", "mean_kendall", "p", "mean_disjoint_kendall")}
    crit = res["criteria_same_datasets"]
    best = probe["after_the_fact"]["best_criterion"]
    assert best["mean_kendall"] == max(c["mean_kendall"] for c in crit.values())
    assert probe["fraction"] == pytest.approx(
        sum(r["probe_fraction"] for r in res["studies"].values()) / len(res["studies"]))
    if "test" in res["pooled"]:  # addendum 15, said in words, beside the ranking criterion
        assert probe["test"]["held"] == (res["pooled"]["test"]["p"] < probe["test"]["bar_p"])
        rank = probe["test"]["ranking_criterion"]
        assert rank["name"] == evidence()["criterion"]
        assert rank["mean_kendall"] == res["criteria_test"][rank["name"]]["mean_kendall"]
