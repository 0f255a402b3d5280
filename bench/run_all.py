"""Every benchmark in one run: prints a table (each figure beside its same-run anchor, its target, the ratio and
whether it is met) and writes bench/results/latest.json (and latest.md, the table in Markdown).

    python -m bench                                   # everything, about 10 minutes on 2 cores
    python -m bench --data train-images-idx3-ubyte.gz --target-elbo 110   # time to quality on your file (default:
                                                      # generated shapes and a generated MNIST-sized IDX file)
    python -m bench --quick                           # a smoke run with small sizes (figures not meaningful)
    python -m bench --only browser,projection
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench.report import Figure, markdown_table, median, p95, table

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("train", "quality", "conv", "browser", "projection")


def train_figures(quick: bool) -> tuple[list[Figure], dict]:
    """Throughput, one torch thread by process CPU time (stable on a shared machine: neighbours do not move it), and
    the same with all cores by wall clock (what a user waits; noisy where the machine is shared)."""
    from bench.bench_train import measure

    size = dict(n=4000, epochs=1, repeats=1) if quick else dict(n=20_000, epochs=2, repeats=3)
    # the 1-thread figures carry the targets: 15 rounds there. A job's speed depends on where its buffers land (the
    # same loop in fresh processes ran 3.47-3.87 s CPU): one round's ratio moves by ±5%, and the median of 9 moved
    # by ±3% between whole runs
    raw = {"one_thread": measure(threads=1, **dict(size, repeats=1 if quick else 15)), "all_cores": measure(**size)}
    c, s = raw["one_thread"]["cpu"], raw["one_thread"]["setup"]
    rates, spread = c["samples_per_s"], c["spread"]
    wall = raw["all_cores"]["wall"]

    def spread_of(name: str) -> str:
        return f"runs {spread[name][0]:.2f}–{spread[name][1]:.2f}× of its median"

    def paired(pair: str) -> dict:
        """The Figure's ratio (the median of per-round ratios), with the rounds and the ratio of medians for the JSON."""
        a, b = pair.split("_vs_")
        return dict(given_ratio=c[f"ratio_{pair}"],
                    extra={"rounds": c["ratio_rounds"][pair], "ratio_of_median_rates": rates[a] / rates[b]})

    def rounds_of(pair: str) -> str:
        rounds = c["ratio_rounds"][pair]
        return f"ratio: median of {len(rounds)} per-round ratios, {min(rounds):.2f}–{max(rounds):.2f}×"

    common = (f"{s['model']}, batch {s['batch']}, {s['train_images']} images × {s['epochs']} epochs, "
              f"{s['repeats']} rounds, each running the engine's two paths and the loop back to back; rates are "
              "medians; 1 torch thread, process CPU time")
    from bench.bench_app_path import ARCHS, measure as app_path

    raw["app_path"] = paths = app_path(rounds=1 if quick else 3, epochs=2 if quick else None)
    by_wall = [
        Figure("training", f"app vs CLI by wall clock, all cores, {label} recipe", paths[label]["img_per_s"]["app"],
               "img/s", paths[label]["img_per_s"]["cli"], "CLI path", 0.95, "higher", given_ratio=paths[label]["ratio"],
               note=f"{paths['data']}, {paths[label]['setup']}, {paths['threads']} threads; each path's whole job, "
                    f"median of {paths['rounds']} per-round ratios ({', '.join(f'{x:.2f}' for x in paths[label]['ratio_rounds'])}×); "
                    "bench/bench_app_path.py")
        for label in ARCHS]
    return by_wall + [
        Figure("training", "engine, CLI path (run()) vs equal-maths loop", rates["engine"], "img/s",
               rates["equal_maths"], "equal-maths loop", 0.95, "higher",
               f"{common}; {rounds_of('engine_vs_equal_maths')}; engine {spread_of('engine')}, loop "
               f"{spread_of('equal_maths')}; with {raw['all_cores']['machine']['threads']} threads by wall clock: "
               f"{wall['ratio_engine_vs_equal_maths']:.2f}×", **paired("engine_vs_equal_maths")),
        Figure("training", "engine, app path (worker process) vs equal-maths loop", rates["engine_process"], "img/s",
               rates["equal_maths"], "equal-maths loop", 0.95, "higher",
               f"ProcessJob start to end, the worker's CPU time included; {rounds_of('engine_process_vs_equal_maths')}"
               f"; {spread_of('engine_process')}; all cores by wall clock: "
               f"{wall['ratio_engine_process_vs_equal_maths']:.2f}×", **paired("engine_process_vs_equal_maths")),
        Figure("training", "app vs CLI (worker process vs run())", rates["engine_process"], "img/s",
               rates["engine"], "CLI path", 0.95, "higher",
               f"{rounds_of('engine_process_vs_engine')}; all cores by wall clock: "
               f"{wall['ratio_engine_process_vs_engine']:.2f}×; the old background thread: "
               f"{c['ratio_engine_background_vs_engine']:.2f}× (1 thread, CPU), "
               f"{wall['ratio_engine_background_vs_engine']:.2f}× (all cores, wall)", **paired("engine_process_vs_engine")),
        Figure("training", "engine vs pytorch/examples loop (what users run)", rates["engine"], "img/s",
               rates["bare_tensor"], "examples loop", note="sigmoid + BCE, unfused Adam, batches from one tensor; "
               f"over a DataLoader: {rates['examples_dataloader']:,.0f} img/s"),
        Figure("training", "fraction of fp32 matmul peak, 1 thread", c["engine_gflops"], "GFLOP/s",
               c["matmul_peak_gflops"], "matmul peak", 0.5, "higher",
               f"at batch {s['big_batch']}: {100 * c['engine_big_batch_fraction_of_peak']:.0f}% of peak"),
        Figure("training", "fraction of fp32 matmul peak, all cores (wall)", wall["engine_gflops"], "GFLOP/s",
               wall["matmul_peak_gflops"], "matmul peak", 0.5, "higher",
               f"{raw['all_cores']['machine']['threads']} threads; at batch {s['big_batch']}: "
               f"{100 * wall['engine_big_batch_fraction_of_peak']:.0f}% of peak"),
    ], raw


def quality_figures(data: str, target_elbo: float | None, quick: bool) -> tuple[list[Figure], dict]:
    from bench.bench_quality import measure

    datasets = [data] if data != "shapes" else ["shapes", "mnist-like"]
    figures, raw = [], {}
    for name in datasets:
        r = raw[name] = measure("digits" if quick and name == "shapes" else name, target_elbo,
                                budget_s=8 if quick else 45, seeds=(0,) if quick else (0, 1, 2))
        med, ratio = r["median"], r["ratio"]
        app, ex = med["app default"], med["pytorch/examples"]
        given = "given" if r["level_given"] else "per seed, the worse recipe's best within the budget + 2%"
        note = (f"{r['data']} ({r['n']:,} images); validation −ELBO level {given}; CPU seconds of one torch "
                f"thread; per-seed ratio median {_x(ratio['median'])} (range {_x(ratio['min'])}–{_x(ratio['max'])}, "
                f"{ratio['count']} seeds); held-out −ELBO / −IWAE(k=50) after {r['budget_cpu_s']:.0f} s: app "
                f"{_n(app['final_neg_elbo'])} / {_n(app['final_neg_iwae'])}, examples {_n(ex['final_neg_elbo'])} / "
                f"{_n(ex['final_neg_iwae'])} nats")
        label = "generated MNIST-sized IDX" if name == "mnist-like" else r["data"]
        figures.append(Figure("time to quality", f"app default recipe vs pytorch/examples, {label}",
                              app["time_to_level_cpu_s"], "s", ex["time_to_level_cpu_s"], "examples recipe", 0.5,
                              note=note))
    got, raw["real"] = real_data_figures(quick)
    return figures + got, raw


def real_data_figures(quick: bool) -> tuple[list[Figure], dict]:
    """On real images (harness/real_data.py): the default recipe to the pytorch/examples recipe's final quality on
    real MNIST 5k, each to its own end; the engine's parity with the examples' loop on the examples' flags; the
    faces' reconstruction MSE against the mean image's."""
    from bench import bench_parity, bench_quality

    seeds = (0,) if quick else (0, 1, 2)
    raw = {"mnist_5k": bench_quality.measure("mnist-5k", seeds=seeds, to_end=True),
           "parity": bench_parity.measure("mnist-5k", seeds), "faces": bench_quality.faces_mse(seeds)}
    m, par, faces = raw["mnist_5k"], raw["parity"], raw["faces"]
    app, ex = m["median"]["app default"], m["median"]["pytorch/examples"]
    whole = median([c["cpu_s"][-1] for c in m["curves"] if c["recipe"] == "pytorch/examples"])
    recipes = f"default: {m['recipes']['app default']}; examples: {m['recipes']['pytorch/examples']}"
    ratio, gain = m["ratio"], m["gain_nats"]
    return [
        Figure("time to quality", "default recipe to the examples' final −ELBO, real MNIST 5k", app["time_to_level_cpu_s"],
               "s", whole, "examples' whole run", 0.5, given_ratio=ratio["median"],
               note=f"{recipes}; per seed, the examples' final validation −ELBO as the level; ratio: median of "
                    f"{ratio['count']} seeds' ratios ({_x(ratio['min'])}–{_x(ratio['max'])}); CPU s of one thread"),
        Figure("quality", "default recipe's end better than the examples', real MNIST 5k", gain["median"], "nats",
               target=2.0, better="higher",
               note=f"held-out −ELBO at each recipe's end: default {_n(app['final_neg_elbo'])}, examples "
                    f"{_n(ex['final_neg_elbo'])} (medians); gain per seed {gain['min']:.2f}–{gain['max']:.2f} nats"),
        Figure("parity", "engine with the examples' flags vs the examples' loop, real MNIST 5k",
               abs(par["mean_difference"]), "nats", target=par["noise"],
               note=f"{par['flags']}; held-out −ELBO per seed (engine / loop): "
                    + ", ".join(f"{r['engine']:.2f} / {r['examples_loop']:.2f}" for r in par["per_seed"])
                    + "; target: two standard errors of the paired differences"),
        Figure("quality", "faces: reconstruction MSE / the mean image's, real LFW crops", faces["median"], "×",
               target=0.5, note=f"{faces['recipe']}; per seed " + ", ".join(f"{r:.2f}" for r in faces["mse_ratio"])),
    ], raw


def conv_figures(quick: bool) -> tuple[list[Figure], dict]:
    """The light conv against the default MLP on real digits (time to quality), and its training throughput against
    an equal-maths conv loop (bench/bench_conv.py)."""
    from bench.bench_conv import CONV, measure

    raw = measure(seeds=(0,) if quick else (0, 1, 2), rounds=1 if quick else 5, epochs=2 if quick else None)
    q, t = raw["quality"], raw["throughput"]
    runs = {name: ", ".join(f"{r['final']:.1f} in {r['cpu_s']:.1f} s" for r in rs) for name, rs in q["runs"].items()}
    note = (f"real MNIST 5k, 4,500 train / 500 held out, 1 torch thread, CPU seconds; per seed: {CONV} {runs[CONV]}; "
            f"MLP {runs['mlp']}")
    return [
        Figure("conv", f"{CONV} vs default MLP: held-out −ELBO gain, median of seeds", q["median_gain_nats"], "nats",
               target=3.0, better="higher", note=note, extra={"gains": q["gain_nats"]}),
        Figure("conv", f"{CONV} vs default MLP: training time", q["median_time_ratio"], "×", target=2.0,
               note="CPU seconds of each whole run (the default recipe's for the MLP), median of per-seed ratios; 3 "
                    "nats better than the MLP's end first at " + ", ".join(_x(r) for r in q["time_to_3_nats_ratio"]),
               extra={"ratios": q["time_ratio"], "time_to_3_nats": q["time_to_3_nats_ratio"]}),
        Figure("conv", f"engine ({CONV}) vs equal-maths conv loop", t["engine_img_per_cpu_s"], "img/s",
               t["loop_img_per_cpu_s"], "equal-maths loop", 0.95, "higher", given_ratio=t["ratio"],
               note=f"{t['setup']}; 1 torch thread, process CPU time; ratio: median of per-round ratios "
                    f"{min(t['ratio_rounds']):.2f}–{max(t['ratio_rounds']):.2f}×"),
    ], raw


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


LIVE_MODELS = {  # raw key -> what it is
    "live_digits": "MLP, digits 8×8", "live_mlp_shapes": "MLP, shapes 32×32",
    "live_conv_shapes": "conv, shapes 32×32", "live_conv_rgb64": "conv, RGB 64×64",
}


def browser_figures(work: Path, quick: bool) -> tuple[list[Figure], dict]:
    from bench.bench_browser import measure

    raw = measure(work, n_changes=4 if quick else 24, cold_repeats=1 if quick else 3)
    if "skipped" in raw:
        return [Figure("browser", "skipped", None, "", note=raw["skipped"])], raw
    idle, busy, cold = _counted(raw["latency_idle_ms"]), _counted(raw["latency_training_ms"]), raw["cold_start_s"]
    n = len(raw["latency_idle_ms"]["explore"])
    lost = {f"{name}/{page}": sum(v is None for v in raw[key][page]) for name, key in
            (("idle", "latency_idle_ms"), ("training", "latency_training_ms")) for page in ("explore", "bare")}
    lost_note = f"; lost changes (nothing within 30 s, counted as 30 s): {lost}"
    figures = [
        Figure("server slider → image and ★", "idle, median", median(idle["explore"]), "ms", median(idle["bare"]),
               "bare Streamlit page", 1.2,
               note=f"{n} changes each, interleaved; Explore with server decoding, until the image has loaded and the "
                    f"map's star moved{lost_note}"),
        Figure("server slider → image and ★", "idle, p95", p95(idle["explore"]), "ms", p95(idle["bare"]),
               "bare Streamlit page"),
        Figure("server slider → image and ★", "while training, median", median(busy["explore"]), "ms",
               median(busy["bare"]), "bare Streamlit page", 1.5,
               note=f"another session trains digits meanwhile ({raw['training_progress']})"),
        Figure("server slider → image and ★", "while training, p95", p95(busy["explore"]), "ms", p95(busy["bare"]),
               "bare Streamlit page"),
    ]
    for key, what in LIVE_MODELS.items():
        live = raw.get(key)
        if not live:
            continue
        drag = live["drag"]
        figures.append(Figure("live view", f"{what}: decode + draw per frame, median", drag["decode"]["median"], "ms",
                              target=16.0, note=f"kernel {drag['kernel']}; p95 {_ms(drag['decode']['p95'])} over "
                                                f"{drag['decode']['count']} frames of a slider drag"))
        figures.append(Figure("live view", f"{what}: drag event → painted frame, median", drag["paint"]["median"],
                              "ms", note=f"p95 {_ms(drag['paint']['p95'])}; from the input event to the frame after "
                                         "the one that drew it"))
        if "hover" in live:
            figures.append(Figure("live view", f"{what}: hover → image and reconstruction, median",
                                  live["hover"]["median"], "ms", note=f"p95 {_ms(live['hover']['p95'])} over "
                                                                      f"{live['hover']['count']} points"))
        if "map_drag" in live:
            frame = live["map_drag"]["frame_interval"]
            figures.append(Figure("live view", f"{what}: map star drag, frame interval, median", frame["median"], "ms",
                                  note=f"p95 {_ms(frame['p95'])}; a movement per display frame (16.7 ms at 60 Hz)"))
    for name, m in raw.get("map_scale", {}).items():
        what = f"map of {m['points']:,} points"
        figures.append(Figure("map", f"{what}: pan/zoom frame interval, median", m["frame_interval"]["median"], "ms",
                              target=33.3, note=f"p95 {_ms(m['frame_interval']['p95'])} over "
                                                f"{m['frame_interval']['count']} frames; {m['drawn']:,} drawn"))
        figures.append(Figure("map", f"{what}: hover → image never fetched before, median",
                              m["hover_image_first"]["median"], "ms", target=50.0,
                              note=f"p95 {_ms(m['hover_image_first']['p95'])} over {m['hovered']} points, each in "
                                   "a new block; loopback"))
    figures += [
        Figure("cold start", "to an interactive first page", median(cold["app"]), "s", median(cold["bare_torch"]),
               "bare page importing torch", 1.5, note=f"median of {len(cold['app'])} alternating starts"),
        Figure("cold start", "a second session on a warm server", median(raw["warm_session_s"]["app"]), "s",
               median(raw["warm_session_s"]["bare_torch"]), "bare page importing torch", target=2.0,
               target_on_value=True,
               note=f"median of {len(raw['warm_session_s']['app'])}: opening the URL until the live panel is ready "
                    "and Streamlit is done; the target is in seconds, the bare page for scale"),
        *explore_open_figures(raw.get("explore_open", {}), median(raw["warm_session_s"]["bare_torch"])),
        Figure("memory", "server peak RSS after training on 10k images", raw["server_peak_rss_mb"], "MB",
               target=1024.0, note=f"10k shapes 32×32, default recipe, then Explore; "
                                   f"{raw['peak_rss_after_training_mb']:.0f} MB right after training"),
    ]
    return figures, raw


OPEN_CASES = {"conv_shapes_20k": "conv, 20k shapes 32×32", "conv_rgb64_10k": "conv, 10k RGB 64×64"}


def explore_open_figures(opens: dict, bare_session_s: float | None = None) -> list[Figure]:
    """Explore's time to interactive (map drawn, live panel decoding) per case: first open, second, restart; a bare
    page importing torch's second session (same run) beside the later two for scale: no Streamlit page opens faster."""
    bare = {"anchor": bare_session_s, "anchor_name": "a bare torch page's second session", "target_on_value": True}
    figures = []
    for key, what in OPEN_CASES.items():
        o = opens.get(key)
        if not o:
            continue
        figures += [
            Figure("Explore open", f"{what}: first open", o["first_s"], "s", target=2.0,
                   note=f"a started server, the model never opened; {o['first_points']:,} points drawn first, every "
                        f"code in after {o['all_codes_s']:.1f} s"),
            Figure("Explore open", f"{what}: a second session", o["second_s"], "s", target=0.5, **bare),
            Figure("Explore open", f"{what}: restarted server, kept codes", o["restart_s"], "s", target=0.5, **bare,
                   note=f"{o['restart_points']:,} points drawn at once; {o['restart_cold_s']:.1f} s when Explore is "
                        "the restarted server's first page (its cold start included)"),
        ]
    return figures


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} ms"


def _counted(samples: dict[str, list], lost_ms: float = 30_000.0) -> dict[str, list[float]]:
    """The latencies of every change, a lost one (None: nothing came) counted as the 30 s it was waited for."""
    return {page: [lost_ms if v is None else v for v in values] for page, values in samples.items()}


def projection_figures(run: str) -> tuple[list[Figure], dict]:
    from bench.bench_projection import measure

    raw = measure(run)
    cases = {(c["method"], c["n"], c["params"].get("max_points")): c for c in raw["cases"]}
    engine = raw["engine_pca_10k"]
    figures = [Figure("projection", "PCA 10k, encoding included (engine)", 1000 * engine["total_s"], "ms", target=50.0,
                      note=f"encode {1000 * engine['encode_s']:.0f} ms + PCA {1000 * engine['pca_s']:.1f} ms, "
                           "32×32 shapes through the MLP encoder")]
    labels = {("pca", 2000, None): "PCA 2k", ("pca", 10_000, None): "PCA 10k",
              ("tsne", 2000, 2000): "t-SNE 2k", ("tsne", 10_000, 2000): "t-SNE 10k (page default: 2k subsample)",
              ("tsne", 10_000, 5000): "t-SNE 5k (of 10k)"}
    for k, label in labels.items():
        c = cases[k]
        first = c["first_s"] if c["method"] == "pca" else c["first_projection_s"]
        what = "encode + KL + errors + ranges + fit" if c["method"] == "pca" else "fit (codes already encoded)"
        figures.append(Figure("projection", f"{label}, first (page)", first, "s",
                              target=20.0 if k == ("tsne", 10_000, 5000) else None, note=what))
        figures.append(Figure("projection", f"{label}, cached (page)", 1000 * c["cached_s"], "ms"))
    by = {(t["library"], t["n"]): t for t in raw["tsne_libraries"]}
    for (library, n), t in by.items():
        anchor = by[("scikit-learn", n)]["seconds"] if library != "scikit-learn" else None
        figures.append(Figure("projection", f"t-SNE {n // 1000}k codes, {library}", t["seconds"], "s",
                              anchor=anchor, anchor_name="scikit-learn's TSNE on the same codes" if anchor else "",
                              note=f"trustworthiness {t['trustworthiness']:.4f}, 10-NN kept "
                                   f"{t['neighbours_kept']:.3f}"))
    return figures, raw


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="shapes", help="time to quality on: shapes (default), digits, or a file path")
    p.add_argument("--target-elbo", type=float, default=None, help="validation −ELBO level for time to quality")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--quick", action="store_true", help="small sizes: checks the benchmark runs, figures meaningless")
    p.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.only.split(",") if x.strip()]
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="vae-bench-"))
    figures: list[Figure] = []
    raw: dict = {}
    for part in parts:
        part_start = time.perf_counter()
        if part == "train":
            got, raw["train"] = train_figures(args.quick)
        elif part == "quality":
            got, raw["quality"] = quality_figures(args.data, args.target_elbo, args.quick)
        elif part == "conv":
            got, raw["conv"] = conv_figures(args.quick)
        elif part == "browser":
            got, raw["browser"] = browser_figures(work, args.quick)
        elif part == "projection":
            run = raw.get("browser", {}).get("shapes_run") or _shapes_run(work)
            got, raw["projection"] = projection_figures(run)
        else:
            raise SystemExit(f"unknown part {part!r}; choose from {PARTS}")
        raw.setdefault("seconds", {})[part] = time.perf_counter() - part_start
        figures += got
        print(f"[{part}: {raw['seconds'][part]:.0f} s]", flush=True)
    result = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
              "seconds": time.time() - started, "quick": args.quick,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "figures": [f.as_dict() for f in figures], "raw": raw}
    print()
    print(table(figures))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    out.with_suffix(".md").write_text(markdown_table(figures) + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')} ({result['seconds'] / 60:.1f} min)")
    return result


def _shapes_run(work: Path) -> str:
    """A model trained on 10k shapes by the engine's CLI, for --only projection without the browser part."""
    from vae_core.train import main as train_main

    out = work / "runs" / "shapes-10k"
    train_main(["--data", "shapes", "--shapes-n", "10000", "--epochs", "3", "--out", str(out), "--quiet"])
    return str(out)


if __name__ == "__main__":
    main()
