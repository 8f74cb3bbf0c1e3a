"""Every sample of a search space must validate, round-trip and build: check N random samples.

    python benchmarks/space_samples.py --n 10000

Per space, for each of N random samples (space.RandomTrial, seeded): validate, YAML round trip
with the same canonical key, build on the meta device and run a forward pass there at 32x32
(shapes and the whole module graph, no arithmetic); every ``--real-every``-th sample also runs
a real forward pass on the CPU. Prints counts, failures and timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_space(name: str, n: int, real_every: int, seed: int) -> dict:
    import torch

    from blocks import build_model
    from space import ArchSpec
    from space.spaces import get_space

    space = get_space(name)
    t0 = time.perf_counter()
    specs = space.random_specs(n, seed=seed)
    t_sample = time.perf_counter() - t0
    failures: list[str] = []
    keys = set()
    t0 = time.perf_counter()
    for i, spec in enumerate(specs):
        again = ArchSpec.from_yaml(spec.to_yaml())
        if again != spec or again.canonical_key() != spec.canonical_key():
            failures.append(f"sample {i}: YAML round trip changed the spec")
        keys.add(spec.canonical_key())
    t_yaml = time.perf_counter() - t0
    t0 = time.perf_counter()
    real = 0
    for i, spec in enumerate(specs):
        try:
            with torch.device("meta"):
                model = build_model(spec, 10).eval()
                out = model(torch.empty(1, 3, 32, 32))
            if tuple(out.shape) != (1, 10):
                failures.append(f"sample {i}: output shape {tuple(out.shape)}")
            if real_every and i % real_every == 0:
                model = build_model(spec, 10).eval()
                with torch.no_grad():
                    y = model(torch.randn(2, 3, 32, 32))
                real += 1
                if not torch.isfinite(y).all():
                    failures.append(f"sample {i}: non-finite output")
        except Exception as exc:  # a benchmark of failures: record, go on
            failures.append(f"sample {i}: {type(exc).__name__}: {exc}")
    t_build = time.perf_counter() - t0
    return {"space": name, "samples": n, "distinct": len(keys), "real_forwards": real, "failures": failures,
            "sample_s": t_sample, "yaml_s": t_yaml, "build_s": t_build}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="samples per space")
    p.add_argument("--spaces", nargs="*", default=["seesaw", "shufflenet"])
    p.add_argument("--real-every", type=int, default=100, help="a real CPU forward every K samples (0: none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    bad = 0
    for name in args.spaces:
        r = check_space(name, args.n, args.real_every, args.seed)
        bad += len(r["failures"])
        print(f"{r['space']}: {r['samples']} samples ({r['distinct']} distinct), {len(r['failures'])} failures; "
              f"sampling {r['sample_s']:.1f}s, YAML round trips {r['yaml_s']:.1f}s, "
              f"meta build+forward ({r['real_forwards']} also real) {r['build_s']:.1f}s", flush=True)
        for f in r["failures"][:10]:
            print("  ", f)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
