#!/usr/bin/env python3
"""How the rate mixtures' weights (EFFECT_WEIGHTS in
crates/ripcord-core/src/stats/mod.rs) were chosen.

Rare flags: each flag is the candidate's with probability q = s·m/(s·m + 1 − s)
at share s and rate ratio m. For each cell, the mean number of flags a weighted
mixture over EFFECT_GRID needs to reach ln(π²/(6α)) (the first epoch's budget)
is divided by what the oracle SPRT, which knows m, needs to reach ln(1/α).
Same random flags for every design. Needs numpy; takes a few minutes.
"""
import numpy as np

ALPHA = 0.05
GRID = [1.25, 1.5, 2, 3, 5, 10]
DESIGNS = {
    "equal": [1] * 6,
    "chosen": [20, 15, 12, 10, 10, 6],
    "steeper": [30, 15, 12, 10, 10, 5],
}


def q(s, m):
    return s * m / (s * m + 1 - s)


def mean_flags(grid, weights, s, flags, threshold):
    grid = np.array(grid, float)
    w = np.array(weights, float) / np.sum(weights)
    q0, qj = q(s, 1.0), q(s, grid)
    step_c, step_b = np.log(qj / q0), np.log((1 - qj) / (1 - q0))
    k = np.cumsum(flags, axis=1)
    t = np.arange(1, flags.shape[1] + 1)[None, :]
    logs = [k * step_c[j] + (t - k) * step_b[j] + np.log(w[j]) for j in range(len(grid))]
    top = np.maximum.reduce(logs)
    mixture = top + np.log(sum(np.exp(l - top) for l in logs))
    hit = mixture >= threshold
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 2 * flags.shape[1])
    return first.mean()


def main():
    rng = np.random.default_rng(11)
    ratios = {name: [] for name in DESIGNS}
    for s in [0.01, 0.1, 0.5]:
        for m in [1.25, 1.5, 2, 3, 5]:
            qt, q0 = q(s, m), q(s, 1)
            kl = qt * np.log(qt / q0) + (1 - qt) * np.log((1 - qt) / (1 - q0))
            n = int(8 * np.log(1 / ALPHA) / kl) + 50
            reps = max(300, min(3000, int(4e7 / n / 7)))
            flags = rng.random((reps, n)) < qt
            oracle = mean_flags([m], [1], s, flags, np.log(1 / ALPHA))
            row = []
            for name, w in DESIGNS.items():
                r = mean_flags(GRID, w, s, flags, np.log(np.pi**2 / 6 / ALPHA)) / oracle
                ratios[name].append(r)
                row.append(f"{name} {r:.2f}")
            print(f"share {s}, {m}x: " + ", ".join(row), flush=True)
    for name, r in ratios.items():
        print(f"{name}: median {np.median(r):.3f}, worst {max(r):.3f}")


if __name__ == "__main__":
    main()
