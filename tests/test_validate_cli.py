"""`featsel validate`: dry-run commands, an end-to-end smoke sweep on digits, resume."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from featsel.cli import main
from featsel.defaults import RANK_CRITERION
from generation.validate import ValidateConfig, candidate_dirname, job_status, plan_jobs, run_validate

TINY = ["n_gen=8", "n_pos=16", "n_unc=4", "queue_size=32", "uncond_queue_size=64",
        "queue_push=16", "eval_n_per_class=12", "ema_decays=[0.9]", "warmup_steps=1"]


def _cfg(**kw):
    base = dict(data="digits", featurizers=["identity", "pca:dim=16"],
                evaluations=["identity", "pca:dim=8"], budget=2, seeds=2,
                config="configs/digits_tiny.yaml", overrides=list(TINY), score_max_samples=300,
                score_repeats=2, n_boot=100, progress=False)
    base.update(kw)
    return ValidateConfig(**base)


def test_text_names_the_criterion_that_made_the_prediction():
    from featsel.cli import _validate_text

    res = {"predictor": "null_share", "verdict": "v.", "warnings": ["w"],
           "table": [{"candidate": "a", "delta_ot_rank": 1, "mean_fd_rank": 1.5},
                     {"candidate": "b", "delta_ot_rank": 2, "mean_fd_rank": None}]}
    assert _validate_text(res, "o").splitlines() == [
        "a: predicted rank 1 (null_share), mean FD rank 1.50",
        "b: predicted rank 2 (null_share), mean FD rank -",
        "v.", "warning: w", "results: o/validation.json", "report: o/validation.html"]
    del res["predictor"]  # a validation.json from before the criterion registry
    assert _validate_text(res, "o").startswith("a: predicted rank 1 (Delta_OT)")
    res["repeatability"] = {"seeds": [2, 3], "n_splits": 10, "outcome": {"mean_kendall": 0.8},
                            "predictors": {"null_share": {"mean_kendall": 0.6},
                                           "x": {"mean_kendall": None}}}
    assert _validate_text(res, "o").splitlines()[3] == (
        "repeatability: the outcome of 2 seed(s) against the other 3, Kendall +0.80 (mean over "
        "10 splits); null_share against the same held seeds +0.60")


def test_dry_run_prints_one_command_per_job(tmp_path, capsys):
    out = tmp_path / "sweep"
    rc = main(["validate", "--featurizers", "identity,pca:dim=16,random-vit:depth=2,tap_every=1",
               "--seeds", "3", "--budget", "7", "--out", str(out), "--dry-run"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9
    assert all(ln.startswith("featsel train ") and "--steps 7" in ln for ln in lines)
    assert sum("--featurizer random-vit:depth=2,tap_every=1 " in ln for ln in lines) == 3
    assert len({ln.split("--out ")[1].split()[0] for ln in lines}) == 9
    assert not out.exists()  # a dry run writes nothing
    rc = main(["validate", "--featurizers", "identity", "--seeds", "2", "--out", str(out),
               "--dry-run", "--nproc", "4", "--json"])
    cmds = json.loads(capsys.readouterr().out)["commands"]
    assert len(cmds) == 2 and all(c.startswith("torchrun --nproc_per_node=4 -m featsel.cli train")
                                  for c in cmds)
    assert not any("--allow-no-gradient" in c for c in cmds)
    # a control trained as the baseline passes featsel train's refusal of featurizers that
    # cannot pass a gradient, and only the control does
    rc = main(["validate", "--featurizers", "identity,noise:dim=4", "--seeds", "1", "--out",
               str(out), "--dry-run", "--json"])
    cmds = json.loads(capsys.readouterr().out)["commands"]
    assert [("--allow-no-gradient" in c, "noise" in c) for c in cmds] == [(False, False), (True, True)]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="--budget"):
        plan_jobs(_cfg(budget=0), ["identity"], tmp_path)
    with pytest.raises(ValueError, match="--seeds"):
        plan_jobs(_cfg(seeds=0), ["identity"], tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        plan_jobs(_cfg(), ["identity", "identity"], tmp_path)
    with pytest.raises(ValueError, match="--jobs"):
        run_validate(_cfg(jobs=0), tmp_path, dry_run=True)
    with pytest.raises(ValueError, match="unknown config key"):
        run_validate(_cfg(overrides=["no_such_key=1"]), tmp_path, dry_run=True)
    assert candidate_dirname("identity") == "identity"
    assert candidate_dirname("pca:dim=16") != candidate_dirname("pca_dim=16")


def test_smoke_sweep_then_resume(tmp_path):
    out = tmp_path / "sweep"
    cfg = _cfg(eval_fractions=(1.0,))  # the final step only: the curves have their own test
    res = run_validate(cfg, out)
    assert (out / "validation.json").is_file() and (out / "validation.csv").is_file()
    html = (out / "validation.html").read_text()
    assert "<table" in html and all(c in html for c in cfg.featurizers)
    assert (out / "score" / "results.json").is_file()
    saved = json.loads((out / "validation.json").read_text())
    assert saved["table"] == res["table"]
    assert len(res["jobs_run"]) == 4 and res["jobs_skipped"] == []
    for c in cfg.featurizers:
        for k in range(2):
            ev = json.loads((out / "runs" / candidate_dirname(c) / f"seed{k}" /
                             "eval.json").read_text())
            assert ev["step"] == 2
            for kind in ("fd", "cond_fd"):
                assert res[kind][c]["pca:dim=8"][k] == ev["alphas"]["1"]["pca:dim=8"][kind]
    # identity trained in the 'identity' evaluation space: marked and left out of the ranks of
    # both FD metrics of that space
    assert {"candidate": "identity", "evaluation": "identity"} in [
        {k: h[k] for k in ("candidate", "evaluation")} for h in res["metric_hacking"]]
    for m in ("fd[identity]", "cond_fd[identity]"):
        assert res["fd_ranks"][m] == {"pca:dim=16": 1.0}
    rows = {r["candidate"]: r for r in res["table"]}
    assert rows["identity"]["hacked[identity]"] and not rows["pca:dim=16"]["hacked[identity]"]
    # mean FD rank recomputed from the per-seed FDs in the report
    mean = {(c, m["metric"]): sum(v) / len(v) for m in res["fd_metrics"] for c in res["fd"]
            for v in [res[m["kind"]][c][m["evaluation"]]]}
    assert len(res["fd_ranks"]) == 4
    for m, ranks in res["fd_ranks"].items():
        order = sorted(ranks, key=lambda c: mean[c, m])
        assert [ranks[c] for c in order] == sorted(ranks.values())
    assert rows["identity"]["mean_fd_rank"] == pytest.approx(
        (res["fd_ranks"]["fd[pca:dim=8]"]["identity"]
         + res["fd_ranks"]["cond_fd[pca:dim=8]"]["identity"]) / 2)
    # two candidates: no defined rank correlation, and the report says so
    assert res["correlation"]["spearman"] is None or math.isnan(res["correlation"]["spearman"])
    assert "Not enough to judge" in res["verdict"]
    assert set(res["predicted_order"]) == set(cfg.featurizers)
    # the curve (final step only here): the mean over the 2 seeds; collapse judged per run
    assert res["eval_steps"] == [2]
    cur = res["curves"]["pca:dim=16"]["cond_fd[pca:dim=8]"]
    assert cur["n_seeds"] == [2]
    assert cur["mean"][0] == pytest.approx(sum(res["cond_fd"]["pca:dim=16"]["pca:dim=8"]) / 2)
    assert {r["candidate"] for r in res["collapse"]["runs"]} == set(cfg.featurizers)
    assert all(r["evaluated_steps"] == [2] for r in res["jobs_run"])
    # one sample grid per candidate (digits are images)
    assert set(res["figures"]) == set(cfg.featurizers)
    for rel in res["figures"].values():
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # featsel report redraws every figure of the folder from its files alone (the figure data
    # the sweep saved): neither generation nor umap is imported
    pngs = sorted((out / "figures").glob("*.png"))
    assert {p.name for p in pngs} >= {Path(rel).name for rel in res["figures"].values()}
    for p in pngs:
        p.unlink()
    code = ("import sys; from featsel.cli import main; assert main(['report', sys.argv[1]]) == 0; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('generation', 'umap')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p

    # a rerun skips every finished job and reuses the score
    again = run_validate(cfg, out)
    assert again["jobs_run"] == [] and len(again["jobs_skipped"]) == 4
    assert again["table"] == res["table"]
    # a score made before a criterion was registered (its validity lacks it) is redone; the
    # finished jobs are still reused
    sp = out / "score" / "results.json"
    old = json.loads(sp.read_text())
    old["ranking"]["validity"].pop("null_share")
    sp.write_text(json.dumps(old))
    redo = run_validate(cfg, out)
    assert "null_share" in json.loads(sp.read_text())["ranking"]["validity"]
    assert redo["jobs_run"] == [] and len(redo["jobs_skipped"]) == 4
    # so is a score ranked by an earlier default criterion (it is the predictor and the prior)
    old = json.loads(sp.read_text())
    old["settings"]["criterion"] = "null_share" if RANK_CRITERION != "null_share" else "delta_ot"
    sp.write_text(json.dumps(old))
    redo = run_validate(cfg, out)
    assert json.loads(sp.read_text())["settings"]["criterion"] == RANK_CRITERION
    assert redo["predictor"] == RANK_CRITERION and redo["jobs_run"] == []

    # a larger budget makes every job unfinished: refused without resume, continued with it
    more = _cfg(budget=3)
    jobs = plan_jobs(more, more.featurizers, out)
    assert {job_status(j, 3, more.evaluations, 1.0) for j in jobs} == {"partial"}
    with pytest.raises(ValueError, match="--resume"):
        run_validate(more, out)
    res3 = run_validate(more, out, resume=True)
    assert len(res3["jobs_run"]) == 4
    assert all(r["status_before"] == "partial" and r["train"]["resumed_from"] == 2
               and r["train"]["steps_run"] == 1 for r in res3["jobs_run"])
    # default fractions of 3 steps: 1, 2, 3. Step 2 was evaluated by the first sweep, step 1
    # is past (no point: said in the warnings), only step 3 is new
    assert all(r["evaluated_steps"] == [3] for r in res3["jobs_run"])
    assert res3["eval_steps"] == [1, 2, 3]
    assert all(m["n_seeds"] == [0, 2, 2] for c in res3["curves"].values() for m in c.values())
    assert any("no evaluation at step(s) [1]" in w for w in res3["warnings"])
    assert {job_status(j, 3, more.evaluations, 1.0) for j in jobs} == {"done"}
    # the sample figures are redrawn from the longer-trained generators (issue 15.9)
    drawn = json.loads((out / "figures" / "steps.json").read_text())
    assert set(drawn.values()) == {3}


def test_umap_embedding_then_figure_writes_png(tmp_path):
    """The sweep computes the UMAP (generation); the report draws it from the saved arrays."""
    import numpy as np

    from generation.validation.figures import save_arrays, umap_embedding
    from reports.validation_figures import draw_sample_figure, embedding_figure

    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(6, 1, (40, 5))])
    gen = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(6, 1, (20, 5))])
    lab_r, lab_g = np.repeat([0, 1], 40), np.repeat([0, 1], 20)
    emb = umap_embedding(real, lab_r, gen, lab_g)
    assert emb["real"].shape == (80, 2) and emb["gen"].shape == (40, 2)
    p = embedding_figure(emb["real"], lab_r, emb["gen"], lab_g, tmp_path / "u.png",
                         class_names=["a", "b"], title="t")
    assert p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_arrays(tmp_path / "w.npz", **emb, class_names=np.array(["a", "b"]), title=np.array("t"))
    p = draw_sample_figure(tmp_path / "w.npz", tmp_path / "w.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p.unlink()  # redrawn from the file alone, without umap
    code = ("import sys; from reports.validation_figures import draw_sample_figure; "
            "draw_sample_figure(sys.argv[1], sys.argv[2]); assert 'umap' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "w.npz"), str(p)], check=True)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="same D"):
        umap_embedding(real, lab_r, gen[:, :3], lab_g)
    with pytest.raises(ValueError, match="2-D embeddings"):
        embedding_figure(real, lab_r, gen, lab_g, tmp_path / "v.png")


@pytest.mark.parametrize("shape, nrow", [((10, 1, 8, 8), 4), ((6, 3, 5, 7), 3), ((1, 1, 4, 4), 8)])
def test_sample_grid_png_matches_torchvision(tmp_path, shape, nrow):
    """reports draws the sample grids without torch: the same pixels torchvision wrote."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.utils import save_image

    from reports.validation_figures import sample_grid_png

    x = torch.from_numpy(np.random.default_rng(1).uniform(-1.3, 1.3, shape).astype(np.float32))
    save_image(x.clamp(-1, 1), tmp_path / "tv.png", nrow=nrow, normalize=True,
               value_range=(-1, 1))
    sample_grid_png(x.numpy(), nrow, tmp_path / "np.png")
    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("tv.png", "np.png"))
    assert a.shape == b.shape and (a == b).all()


def test_score_sees_the_training_split_and_generation_space(tmp_path):
    """The candidates are scored on the samples the generators train on: the training config's
    split and generation space (here a PCA-6 space set with --set), not the manifest's default;
    a changed space is a new score, not a reused one."""
    from generation.validation.score import score_candidates

    cfg = _cfg(overrides=[*TINY, "space=pca:dim=6"], featurizers=["identity"])
    res = score_candidates(cfg, ["identity"], ["pca:dim=4"], tmp_path)
    s = res["settings"]
    assert s["generation_space"] == "pca:dim=6" and s["split"] == "train"
    (row,) = [r for r in res["ranking"]["table"] if not r["control"]]  # + the noise controls
    assert row["dim"] == 6  # identity of the PCA-6 space
    res2 = score_candidates(_cfg(featurizers=["identity"], score_split="all"), ["identity"],
                            ["pca:dim=4"], tmp_path)
    assert res2["settings"]["generation_space"] != "pca:dim=6"
    assert res2["settings"]["split"] == "all"


def test_curve_at_every_fraction_and_resume_after_an_interrupted_fraction(tmp_path, monkeypatch):
    """Budget 4, default fractions: evaluated at steps 1, 2, 3, 4. A sweep killed during the
    50% evaluation resumes: the step-2 checkpoint is evaluated first, then training continues;
    eval_curve.json holds every step, eval.json the final one, validation.json the curves."""
    from pathlib import Path

    import generation.evaluate as E
    from generation.run import checkpoint_step, read_curve

    out = tmp_path / "sweep"
    cfg = _cfg(featurizers=["pca:dim=16"], evaluations=["pca:dim=8"], seeds=1, budget=4,
               figures=False)
    real_eval, calls = E.evaluate_run, []

    def killed_at_the_second(run, **kw):
        calls.append(run)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed during the 50% evaluation")
        return real_eval(run, **kw)

    monkeypatch.setattr(E, "evaluate_run", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_validate(cfg, out)
    (job,) = plan_jobs(cfg, cfg.featurizers, out)
    run = Path(job.run_dir)
    assert checkpoint_step(run) == 2 and sorted(read_curve(run)) == [1]
    assert job_status(job, 4, cfg.evaluations, 1.0) == "partial"
    monkeypatch.setattr(E, "evaluate_run", real_eval)
    with pytest.raises(ValueError, match="--resume"):
        run_validate(cfg, out)
    res = run_validate(cfg, out, resume=True)
    (r,) = res["jobs_run"]
    assert r["status_before"] == "partial" and r["evaluated_steps"] == [2, 3, 4]
    assert r["train"]["resumed_from"] == 2 and r["train"]["steps_run"] == 2
    assert r["train"]["stages"] == 2
    curve = read_curve(run)
    assert sorted(curve) == [1, 2, 3, 4] and {p["budget"] for p in curve.values()} == {4}
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [
        1, 2, 3, 4]
    ev = json.loads((run / "eval.json").read_text())
    final = ev["alphas"]["1"]["pca:dim=8"]
    assert ev["step"] == 4 and final["fd"] == curve[4]["alphas"]["1"]["pca:dim=8"]["fd"]
    # collapse statistics and the verdict are in the run's eval data
    assert {"variance_ratio", "coverage", "collapsed", "reasons",
            "nearest_share_per_class"} <= set(final["collapse"])
    assert job_status(job, 4, cfg.evaluations, 1.0) == "done"
    # validation.json: the curve at the evaluation steps (one seed: the mean is that seed)
    assert res["eval_steps"] == [1, 2, 3, 4]
    for kind in ("fd", "cond_fd"):
        c = res["curves"]["pca:dim=16"][f"{kind}[pca:dim=8]"]
        want = [curve[s]["alphas"]["1"]["pca:dim=8"][kind] for s in (1, 2, 3, 4)]
        assert c["steps"] == [1, 2, 3, 4] and c["mean"] == pytest.approx(want)
        assert c["n_seeds"] == [1, 1, 1, 1]
        assert res[kind]["pca:dim=16"]["pca:dim=8"] == [want[-1]]   # outcome: final step
    conv = res["convergence"]["per_candidate"]["pca:dim=16"]["fd[pca:dim=8]"]
    assert conv["ref_step"] == 3 and conv["final_step"] == 4
    (cr,) = res["collapse"]["runs"]
    assert cr["collapsed"] in (True, False) and cr["variance_ratio"] is not None
    assert res["collapse"]["per_candidate"]["pca:dim=16"]["n_runs"] == 1
    # off-data statistics at the final step only (the summary reads them there)
    assert {"precision", "precision_real", "recall"} <= set(final["support"])
    assert all("support" not in curve[s]["alphas"]["1"]["pca:dim=8"] for s in (1, 2, 3))
    (sr,) = res["support"]["runs"]
    assert sr["off_data"] in (True, False) and res["support"]["space"] == "pca:dim=8"
    assert res["support"]["per_candidate"]["pca:dim=16"]["n_unknown"] == 0
    assert not any("no evaluation at step" in w for w in res["warnings"])
    html = (out / "validation.html").read_text()
    assert 'id="curves"' in html and (out / "figures" / "validation_curves.png").is_file()
    # a rerun has nothing to do
    assert run_validate(cfg, out)["jobs_run"] == []


def test_eval_fractions_flag(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["validate", "--featurizers", "identity", "--seeds", "1", "--out", str(out),
                 "--dry-run", "--eval-fractions", "0.5,1"]) == 0
    capsys.readouterr()
    assert main(["validate", "--featurizers", "identity", "--out", str(out), "--dry-run",
                 "--eval-fractions", "0,1"]) == 1
    assert "--eval-fractions" in capsys.readouterr().err


def test_jobs_train_under_torchrun_with_nproc(tmp_path):
    """--nproc 2: each job trains as a 2-process DDP run (gloo on the CPU) launched with
    torchrun, evaluated here; one line naming the job when the launch fails."""
    from featsel.cli import main as cli_main

    out = tmp_path / "ddp"
    res = run_validate(_cfg(featurizers=["pca:dim=16"], seeds=1, nproc=2, eval_fractions=(1.0,),
                            figures=False), out)
    job = res["jobs_run"][0]
    assert job["train"]["nproc"] == 2 and job["train"]["stopped_at"] == 2
    assert json.loads((out / "runs" / candidate_dirname("pca:dim=16") / "seed0" /
                       "eval.json").read_text())["step"] == 2
    # 10 classes cannot be shared out over 3 processes: the job's error, in one line
    with pytest.raises(RuntimeError, match="torchrun with 3 processes failed.*divisible"):
        run_validate(_cfg(featurizers=["pca:dim=16"], seeds=1, nproc=3, budget=3,
                          eval_fractions=(1.0,), figures=False), tmp_path / "ddp3")
    assert cli_main(["validate", "--out", str(tmp_path / "x"), "--nproc", "-1"]) == 1
