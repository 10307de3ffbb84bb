"""The mutations :mod:`mutation` (``benchmarks/mutation.py``) applies, one at a time: each is a
bug that would silently corrupt a table or a decision, with the tests that must notice it.
Grouped by module: metrics, Human3.6M evaluation, chain passes, the regressor's iteration
order, losses, augmentation, statistics, seed sizing, the iteration decision, aggregation.
The nine of :data:`PINNED_MUTATIONS` once survived the suite."""

from __future__ import annotations

from mutation import Mutation

METRICS = ("tests/eval/test_metrics.py",)
H36M = ("tests/eval/test_h36m_eval.py",)
REGRESSOR = ("tests/model/test_hkmr_regressor.py",)
LOSSES = ("tests/train/test_losses_and_encoders.py",)
AUGMENT = ("tests/data/test_data_augment.py",)
PINNED = "tests/tuning/test_stats_pinned.py"
#: the aggregation tests that read no experiment file by a recorded absolute path (the
#: results-folder re-rendering tests do, and fail while that path holds another version)
AGGREGATE = tuple(f"tests/tuning/test_aggregate.py::test_{name}" for name in (
    "mean_and_95_percent_ci_over_seeds", "tables_in_the_papers_shape_skip_failed_trials_and_say_so",
    "candidates_rank_finished_trials_then_early_stopped_ones_by_validation",
    "paired_differences_cancel_the_seed_effect_and_skip_unpaired_seeds",
    "results_of_an_older_hkmr_read_in_todays_vocabulary", "a_trials_status_comes_from_how_it_ended",
    "status_section_names_failed_and_crashed_trials_with_their_errors",
    "search_table_lists_the_best_first_and_the_unmeasured_last"))
CHOOSE = "tests/ray/test_choose_iterations.py"  # these tests start no Ray
SIZING = (PINNED, f"{CHOOSE}::test_target_mde_adds_seed_batches_sized_by_the_spread_and_says"
                  "_what_stopped_it")
DECISION = (PINNED, "tests/tuning/test_sequential_choice.py")


def _m(name, file, find, replace, tests, equivalent=None):
    return Mutation(name, file, find, replace, tuple(tests), equivalent)


MUTATIONS = [
    # -- metrics ---------------------------------------------------------------------------
    _m("metrics-14-centred-on-first-joint", "hkmr/eval/metrics.py",
       "return joints[..., _HIPS_IN_LSP14, :].mean(-2, keepdim=True)",
       "return joints[..., :1, :]", METRICS),
    _m("metrics-24-centred-on-mean", "hkmr/eval/metrics.py",
       "    return joints[..., :1, :]\n", "    return joints.mean(-2, keepdim=True)\n", METRICS),
    _m("metrics-cm-not-mm", "hkmr/eval/metrics.py",
       "return 1000 * ((pred - _centre(pred))", "return 100 * ((pred - _centre(pred))",
       METRICS),
    _m("pa-mpjpe-without-scale", "hkmr/eval/metrics.py",
       "compute_scaling=True", "compute_scaling=False", METRICS),
    _m("pa-mpjpe-rotation-transposed", "hkmr/eval/metrics.py",
       "pred @ rot.transpose(-1, -2)", "pred @ rot", METRICS),
    _m("pa-mpjpe-squared-error", "hkmr/eval/metrics.py",
       "(aligned - gt).norm(dim=-1).mean(-1)", "(aligned - gt).pow(2).sum(-1).mean(-1)",
       METRICS),
    _m("pck-strict-threshold", "hkmr/eval/metrics.py",
       "<= threshold", "< threshold", METRICS),
    _m("mpjpe-2d-ignores-mask", "hkmr/eval/metrics.py",
       "return (dist * mask).sum(-1) / mask.sum(-1)", "return dist.mean(-1)", METRICS),
    _m("eval-joints-reversed", "hkmr/eval/metrics.py",
       "return joints[:, list(LSP14)]", "return joints[:, list(LSP14)[::-1]]", METRICS),
    # -- Human3.6M evaluation ----------------------------------------------------------------
    _m("h36m-pa-mpjpe-arguments-swapped", "hkmr/eval/h36m.py",
       "pa_mpjpe(pred, gt), nan)", "pa_mpjpe(gt, pred), nan)", H36M),
    _m("h36m-not-centred-on-pelvis", "hkmr/eval/h36m.py",
       "return joints17[:, list(H36M_TO_J14)] - joints17[:, PELVIS:PELVIS + 1]",
       "return joints17[:, list(H36M_TO_J14)]", H36M),
    _m("h36m-max-not-mean", "hkmr/eval/h36m.py",
       "1000 * (pred - gt).norm(dim=-1).mean(-1)", "1000 * (pred - gt).norm(dim=-1).amax(-1)",
       H36M),
    _m("h36m-scores-incomplete-joint-sets", "hkmr/eval/h36m.py",
       "ok = (conf > 0).all(-1)", "ok = (conf > 0).any(-1)", H36M),
    _m("h36m-j14-order-swapped", "hkmr/data/h36m.py",
       "(6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)",
       "(6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 10, 8, 0, 7, 9)", H36M),
    _m("real-h36m-scored-on-smpl-joints", "hkmr/eval/suites.py",
       "            if regressor is not None:\n", "            if False:\n",
       ("tests/eval/test_eval_real.py::test_eval_finds_the_regressor_in_spins_layout",)),
    _m("cmr-scored-on-its-smpl-parameters", "hkmr/body/kinematics.py",
       "        if out.vertices is not None:\n", "        if False:\n",
       ("tests/model/test_cmr.py::test_cmr_trains_on_frozen_features_and_evaluates_its_mesh_"
        "from_the_checkpoint",)),
    # -- chain passes --------------------------------------------------------------------------
    _m("chain-previous-reads-first-joint", "hkmr/model/chain.py",
       "earlier = earlier[-1:]", "earlier = earlier[:1]", REGRESSOR),
    _m("chain-backward-pass-order", "hkmr/model/chain.py",
       "list(range(length - 1, i, -1))", "list(range(i + 1, length))", REGRESSOR),
    _m("chain-fast-solve-wrong-triangle", "hkmr/model/chain.py",
       "upper=direction == BACKWARD", "upper=direction == FORWARD", REGRESSOR),
    _m("chain-fast-pass-replaces-theta", "hkmr/model/chain.py",
       "th = th + torch.baddbmm(bias, psi, weight)", "th = torch.baddbmm(bias, psi, weight)",
       REGRESSOR),
    _m("chain-no-dependency-mask", "hkmr/model/chain.py",
       'res_w * getattr(self, f"{direction}_dep")', "res_w", REGRESSOR),
    _m("chain-padding-leaks", "hkmr/model/chain.py",
       "psi_w * mask[..., None]", "psi_w", REGRESSOR),
    _m("chain-reference-no-re-embedding", "hkmr/model/chain.py",
       "                psi = self.embed_reference(phi, rest(theta))",
       "                pass", REGRESSOR),
    _m("passes-start-backward", "hkmr/model/hkmr.py",
       "cycle = [FORWARD, BACKWARD] if", "cycle = [BACKWARD, FORWARD] if", REGRESSOR),
    # -- the regressor's outer iteration ---------------------------------------------------------
    _m("camera-before-shape-update", "hkmr/model/hkmr.py",
       "            beta = beta + self.shape_net(shape_phi, torch.cat([flat, beta], 1))\n"
       "            cam = self.init_cam + self.camera_net(camera_phi, torch.cat([flat, beta], 1))\n",
       "            cam = self.init_cam + self.camera_net(camera_phi, torch.cat([flat, beta], 1))\n"
       "            beta = beta + self.shape_net(shape_phi, torch.cat([flat, beta], 1))\n",
       REGRESSOR),
    _m("children-conditioned-on-previous-root", "hkmr/model/hkmr.py",
       '            root = self._run(self.root, phi, prep.get("root"), root, beta, None)\n'
       "            cond = root.flatten(1) if self.chain_hierarchy else None\n",
       "            cond = root.flatten(1) if self.chain_hierarchy else None\n"
       '            root = self._run(self.root, phi, prep.get("root"), root, beta, None)\n',
       REGRESSOR),
    _m("shape-update-from-the-mean", "hkmr/model/hkmr.py",
       "beta = beta + self.shape_net(", "beta = self.init_betas + self.shape_net(", REGRESSOR),
    _m("camera-without-mean", "hkmr/model/hkmr.py",
       "cam = self.init_cam + self.camera_net(", "cam = self.camera_net(", REGRESSOR),
    # -- losses (Eq. 3) ----------------------------------------------------------------------------
    _m("losses-w_shape-as-w_smpl", "hkmr/train/losses.py",
       "weights.w_shape * shape", "weights.w_smpl * shape", LOSSES),
    _m("losses-smpl-over-batch-size", "hkmr/train/losses.py",
       "n = has_smpl.sum().clamp(min=1)", "n = has_smpl.new_tensor(float(has_smpl.numel()))",
       LOSSES),
    _m("losses-3d-not-pelvis-aligned", "hkmr/train/losses.py",
       "pred = pred - pred[:, :1]", "pred = pred", LOSSES),
    _m("losses-l1-not-per-coordinate", "hkmr/train/losses.py",
       "(weight.sum() * pred.shape[-1]).clamp(min=1)", "weight.sum().clamp(min=1)", LOSSES),
    _m("losses-pose-not-per-joint", "hkmr/train/losses.py",
       ".sum() / n / 24", ".sum() / n", LOSSES),
    _m("losses-openpose-weight", "hkmr/train/losses.py",
       "weights.w_openpose * keypoints_2d_loss", "weights.w_gt_2d * keypoints_2d_loss", LOSSES),
    _m("losses-2d-weighted-as-3d", "hkmr/train/losses.py",
       "weights.w_2d * l2d", "weights.w_3d * l2d", LOSSES),
    _m("losses-2d-ignores-confidence", "hkmr/train/losses.py",
       "return _weighted_l1(pred_2d, gt[..., :2], gt[..., 2], denominator)",
       "return _weighted_l1(pred_2d, gt[..., :2], torch.ones_like(gt[..., 2]), denominator)",
       LOSSES),
    _m("losses-3d-ignores-has_3d", "hkmr/train/losses.py",
       "return gt[..., 3] * has_3d[:, None]", "return gt[..., 3]", LOSSES),
    _m("losses-prior-unweighted", "hkmr/train/losses.py",
       "weights.w_prior * prior_loss(prior, out)", "prior_loss(prior, out)", LOSSES),
    # -- augmentation ------------------------------------------------------------------------------
    _m("augment-flip-mirrors-y", "hkmr/data/augment.py",
       "j3d[:, 0] *= -1.0", "j3d[:, 1] *= -1.0", AUGMENT),
    _m("augment-flip-keeps-keypoint-order", "hkmr/data/augment.py",
       "kp, vis, j3d = kp[_PERM], vis[_PERM], j3d[_PERM]",
       "vis, j3d = vis[_PERM], j3d[_PERM]", AUGMENT),
    _m("augment-3d-rotation-sign", "hkmr/data/augment.py",
       "[np.sin(t), np.cos(t), 0.0]", "[-np.sin(t), np.cos(t), 0.0]", AUGMENT),
    _m("augment-focal-times-scale", "hkmr/data/augment.py",
       'sample["focal"] / params.scale', 'sample["focal"] * params.scale', AUGMENT),
    _m("augment-rotation-probability-inverted", "hkmr/data/augment.py",
       "rot if rng.random() < self.rot_prob else 0.0",
       "rot if rng.random() > self.rot_prob else 0.0", AUGMENT),
    _m("augment-inside-if-any-coordinate", "hkmr/data/augment.py",
       "inside = (np.abs(kp[:, :2]) <= 1.0).all(1)", "inside = (np.abs(kp[:, :2]) <= 1.0).any(1)",
       AUGMENT),
    _m("augment-part-labels-not-flipped", "hkmr/data/augment.py",
       'out["parts"] = _LABEL_FLIP[parts] if params.flip else parts', 'out["parts"] = parts',
       AUGMENT),
    # -- statistics ------------------------------------------------------------------------------
    _m("pooled-n-largest-group", "tuning/stats/paired.py",
       "min(len(g) for g in usable)", "max(len(g) for g in usable)", (PINNED,)),
    _m("pooled-sd-takes-single-seed-groups", "tuning/stats/paired.py",
       "usable = [g for g in groups if len(g) >= 2]",
       "usable = [g for g in groups if len(g) >= 1]", (PINNED,)),
    _m("cell-admits-stopped-trials", "tuning/stats/intervals.py",
       'r["status"] == "ok"])', 'r["status"] != "failed"])', (PINNED,)),
    _m("differences-admit-unfinished-reference", "tuning/stats/paired.py",
       'if r["configuration"] == name and r["status"] == "ok"',
       'if r["configuration"] == name and r["status"] != "failed"', (PINNED,)),
    _m("differences-paired-by-insertion-order", "tuning/stats/paired.py",
       "    return {s: own[s] - ref[s] for s in sorted(set(ref) & set(own))}",
       "    return {s: a - b for s, a, b in zip(sorted(set(ref) & set(own)), own.values(),\n"
       "                                          ref.values())}", (PINNED,)),
    _m("holm-not-monotone", "tuning/stats/paired.py",
       "out[order] = np.maximum.accumulate(scaled)", "out[order] = scaled", (PINNED,)),
    _m("holm-as-bonferroni", "tuning/stats/paired.py",
       "(m - np.arange(m)) * p[order]", "m * p[order]", (PINNED,)),
    _m("paired-interval-90-percent", "tuning/stats/crossed.py",
       "half = stats.t.ppf(1 - alpha / 2, self.df) * self.se",
       "half = stats.t.ppf(1 - alpha, self.df) * self.se", (PINNED,)),
    _m("mde-one-sided-critical-value", "tuning/stats/paired.py",
       "crit = stats.t.ppf(1 - alpha / 2, df)", "crit = stats.t.ppf(1 - alpha, df)",
       (f"{CHOOSE}::test_mde_is_the_difference_the_paired_t_test_detects_80_percent_of_the_"
        "time",)),
    _m("noninferiority-against-minus-margin", "tuning/stats/sequential_choice.py",
       "t = (d.mean() - bound) / (sd / math.sqrt(len(d)))",
       "t = (d.mean() + bound) / (sd / math.sqrt(len(d)))", DECISION),
    _m("mean-ci-normal-quantile", "tuning/stats/intervals.py",
       "stats.t.ppf(0.975, n - 1)", "stats.norm.ppf(0.975)", (PINNED, *AGGREGATE)),
    _m("mean-ci-population-sd", "tuning/stats/intervals.py",
       "v.std(ddof=1)", "v.std()", (PINNED, *AGGREGATE)),
    # -- seed sizing (--target-mde) ----------------------------------------------------------
    _m("mde-pools-the-reference-with-itself", "tuning/procedures/seed_sizing.py",
       "level = ALPHA / len(members)", "level = ALPHA", SIZING),
    _m("family-mde-takes-the-best-comparison", "tuning/procedures/seed_sizing.py",
       "if not value <= worst[0]:", "if not value >= worst[0]:", SIZING),
    _m("seeds-needed-stops-one-early", "tuning/procedures/seed_sizing.py",
       "for n in range(2, max_seeds + 1):", "for n in range(2, max_seeds):", SIZING,
       equivalent="the loop's fallback returns max_seeds, which is what checking n = "
                  "max_seeds returns whether or not its MDE reaches the target"),
    _m("target-check-without-finiteness", "tuning/procedures/seed_sizing.py",
       "if math.isfinite(value) and value <= target:", "if value <= target:", SIZING,
       equivalent="a NaN MDE compares False with <=, as math.isfinite makes it"),
    _m("more-seeds-not-capped", "tuning/procedures/seed_sizing.py",
       "more = min(max_seeds, max(done + 1, more))", "more = max(done + 1, more)", SIZING,
       equivalent="seeds_needed never exceeds max_seeds, and the loop has stopped once done "
                  "reached max_seeds, so done + 1 <= max_seeds as well"),
    # -- the iteration decision (choose-iterations) --------------------------------------------
    _m("decision-on-raw-p", "tuning/stats/sequential_choice.py",
       'p_ni = holm([_one_sided(c.differences(), design.delta, "less") for c in cheaper])',
       'p_ni = [_one_sided(c.differences(), design.delta, "less") for c in cheaper]', DECISION),
    _m("decision-pairs-by-insertion-order", "tuning/procedures/choose.py",
       "    return paired_by_seed(trials, name, REFERENCE, METRIC)",
       "    return dict(enumerate(v[METRIC] - r[METRIC] for v, r in zip(\n"
       "        (t for t in trials if t[\"configuration\"] == name),\n"
       "        (t for t in trials if t[\"configuration\"] == REFERENCE))))", DECISION),
    _m("decision-futility-on-the-wrong-side", "tuning/stats/sequential_choice.py",
       "elif _lower_bound(c.differences()) > design.delta:",
       "elif _lower_bound(c.differences()) > -design.delta:", DECISION),
    _m("decision-chooses-the-slowest", "tuning/stats/sequential_choice.py",
       "return min(shown, key=lambda c: c.cost) if shown else None",
       "return max(shown, key=lambda c: c.cost) if shown else None", DECISION),
    _m("candidates-ignore-early-stopping", "tuning/procedures/choose.py",
       'scored.append(((r["status"] != "ok", r[METRIC]), json.loads(r["search"])))',
       'scored.append(((False, r[METRIC]), json.loads(r["search"])))', AGGREGATE),
    # -- aggregation ---------------------------------------------------------------------------
    _m("status-section-hides-crashed-trials", "tuning/analysis/aggregate.py",
       'bad = [r for r in rows if r["status"] in ("failed", "error") or r.get("unreadable")]',
       'bad = [r for r in rows if r["status"] in ("failed",) or r.get("unreadable")]',
       AGGREGATE),
    _m("trial-without-final-report-counts-as-ok", "tuning/analysis/aggregate.py",
       '        return "ok"\n    return "stopped"\n', '        return "ok"\n    return "ok"\n',
       AGGREGATE),
    _m("search-table-nan-first", "tuning/analysis/aggregate.py",
       "names.sort(key=lambda n: (math.isnan(cells[n][0][0]), cells[n][0][0]))",
       "names.sort(key=lambda n: (not math.isnan(cells[n][0][0]), cells[n][0][0]))",
       AGGREGATE),
    _m("old-regime-names-kept", "tuning/analysis/aggregate.py",
       "values = [_OLD_REGIME.get(v, v) for v", "values = [v for v", AGGREGATE),
]

#: nine mutations that once survived the suite: each must stay killed
PINNED_MUTATIONS = ("h36m-pa-mpjpe-arguments-swapped", "camera-before-shape-update",
            "losses-w_shape-as-w_smpl", "losses-smpl-over-batch-size", "pooled-n-largest-group",
            "cell-admits-stopped-trials", "mde-pools-the-reference-with-itself",
            "decision-on-raw-p", "decision-pairs-by-insertion-order")
