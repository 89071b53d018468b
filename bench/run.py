"""Time an SVI step of ppl against hand-written torch and against Pyro: ``python bench/run.py``.

Everything runs in one process, on one torch thread. For each configuration (program, size,
validation on or off) the three engines are built, warmed up, then timed in interleaved rounds
(hand, ppl, pyro, hand, ppl, pyro, ...), each round a block of steps lasting about
``--block`` seconds per engine; the table shows the median over rounds of the time per step.
See ``bench/README.md`` for how to read it. ``--quick`` gives rough numbers in a fraction of the
time; ``--only A,C`` runs some configurations only.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import hand
import programs
import torch

import ppl
import ppl.distributions

# without ipywidgets, tqdm warns about notebook progress bars
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pyro
    import pyro.distributions

HAS_PLATE = hasattr(ppl, "plate")
SKIP_PLATE = "skipped: ppl.plate not available yet"
LIBRARIES = {"ppl": (ppl, ppl.distributions), "pyro": (pyro, pyro.distributions)}


# ----------------------------------------------------------------------------------------------
# Configurations


@dataclass
class Config:
    name: str
    describe: str
    program: Callable  # programs.coin etc.: (P, D) -> (model, guide)
    hand: type  # hand.Coin etc.: hand(*args) has .step()
    args: tuple
    needs_plate: bool
    target_off: float  # ppl / hand, validation off
    target_on: float  # ppl / hand, validation on
    # pyro / ppl at the defaults (validation on) must be >= this
    pyro_factor: float | None = None
    sizes: dict = field(default_factory=dict)


def make_configs() -> list[Config]:
    g = torch.Generator().manual_seed(0)
    coin_data = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])

    def regression_data(n):
        x = torch.randn(n, 5, generator=g)
        w = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
        y = x @ w + 1.0 + 0.5 * torch.randn(n, generator=g)
        return x, y

    z = torch.randn(20, generator=g)
    many_y = z + torch.randn(20, generator=g)
    flips = (torch.rand(1000, generator=g) < 0.3).float()
    bern_y = 2.0 * flips - 1.0 + torch.randn(1000, generator=g)
    return [
        Config(
            "A",
            "coin, 10 obs in a loop",
            programs.coin,
            hand.Coin,
            (coin_data,),
            False,
            1.25,
            1.5,
            pyro_factor=2.0,
        ),
        Config(
            "B-1k",
            "regression, N=1,000",
            programs.regression,
            hand.Regression,
            regression_data(1_000),
            True,
            1.3,
            1.5,
        ),
        Config(
            "B-100k",
            "regression, N=100,000",
            programs.regression,
            hand.Regression,
            regression_data(100_000),
            True,
            1.1,
            1.2,
        ),
        Config(
            "B-1k-auto",
            "regression, N=1,000, AutoNormal",
            programs.regression_autonormal,
            hand.RegressionAutoNormal,
            regression_data(1_000),
            True,
            1.3,
            1.5,
        ),
        Config(
            "B-100k-auto",
            "regression, N=100,000, AutoNormal",
            programs.regression_autonormal,
            hand.RegressionAutoNormal,
            regression_data(100_000),
            True,
            1.1,
            1.2,
        ),
        Config(
            "C",
            "20 scalar latents",
            programs.many_latents,
            hand.ManyLatents,
            (many_y,),
            False,
            1.2,
            1.4,
            pyro_factor=2.0,
        ),
        Config(
            "D",
            "Bernoulli latents, N=1,000",
            programs.bernoulli_latents,
            hand.BernoulliLatents,
            (bern_y,),
            True,
            1.3,
            1.5,
            pyro_factor=2.0,
        ),
    ]


def set_validation(flag: bool) -> None:
    # Both set torch's default for distribution argument checks too, so hand follows the same switch.
    ppl.enable_validation(flag)
    pyro.enable_validation(flag)


def svi_stepper(lib: str, config: Config, **elbo_kwargs) -> Callable[[], float]:
    """A fresh ``SVI.step`` of ``lib`` on ``config``'s program, with an empty param store."""
    P, D = LIBRARIES[lib]
    P.clear_param_store()
    model, guide = config.program(P, D)
    svi = P.infer.SVI(
        model, guide, P.optim.Adam({"lr": hand.LR}), P.infer.Trace_ELBO(**elbo_kwargs)
    )
    args = config.args
    return lambda: svi.step(*args)


def hand_stepper(config: Config) -> Callable[[], float]:
    return config.hand(*config.args).step


# ----------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    rounds: int = 31
    # seconds per engine per round: short, so that a noisy spell hits few rounds
    block: float = 0.06
    warmup: float = 0.3  # seconds per engine before the rounds


class Rounds(dict):
    """Seconds per call of each stepper, one entry per interleaved round: ``rounds["ppl"][k]``."""

    def median(self, name: str) -> float:
        return statistics.median(self[name])

    def ratio(self, a: str, b: str) -> float:
        """The median over rounds of a / b, each round's pair timed back to back.

        A noisy spell on a shared machine slows both engines of a round alike, so the ratio
        of the same round is steadier than the ratio of the two medians.
        """
        return statistics.median(x / y for x, y in zip(self[a], self[b]))

    def difference(self, a: str, b: str) -> float:
        """The median over rounds of a - b."""
        return statistics.median(x - y for x, y in zip(self[a], self[b]))


def time_interleaved(
    steppers: dict[str, Callable[[], object]], timing: Timing
) -> Rounds:
    """Seconds per call of each stepper in each of ``timing.rounds`` interleaved blocks."""
    # once, outside the timed blocks (a full collection takes a good part of a second)
    gc.collect()
    blocks = {}
    for name, step in steppers.items():
        step()  # first call: creates params, optimizer state
        start, count = time.perf_counter(), 0
        while count < 3 or time.perf_counter() - start < timing.warmup:
            step()
            count += 1
        per_call = (time.perf_counter() - start) / count
        blocks[name] = max(3, round(timing.block / per_call))
    samples: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(timing.rounds):
        for name, step in steppers.items():
            n = blocks[name]
            start = time.perf_counter()
            for _ in range(n):
                step()
            samples[name].append((time.perf_counter() - start) / n)
    return Rounds(samples)


# ----------------------------------------------------------------------------------------------
# Measurements


def svi_table(configs: list[Config], timing: Timing) -> list[dict]:
    rows = []
    for config in configs:
        for validate in (False, True):
            set_validation(validate)
            steppers = {"hand": hand_stepper(config)}
            note = SKIP_PLATE
            if HAS_PLATE or not config.needs_plate:
                step = svi_stepper("ppl", config)
                try:
                    # one trial step, so that a failure is reported rather than fatal
                    step()
                    steppers["ppl"] = step
                except Exception as error:  # noqa: BLE001
                    note = _failure(error)
            steppers["pyro"] = svi_stepper("pyro", config)
            rounds = time_interleaved(steppers, timing)
            row = {
                "config": config,
                "validate": validate,
                "note": note,
                **{name: rounds.median(name) for name in rounds},
                "pyro/hand": rounds.ratio("pyro", "hand"),
            }
            if "ppl" in rounds:
                row["ppl/hand"], row["pyro/ppl"] = (
                    rounds.ratio("ppl", "hand"),
                    rounds.ratio("pyro", "ppl"),
                )
            rows.append(row)
            print(".", end="", flush=True, file=sys.stderr)
    set_validation(True)
    return rows


def handler_cost(timing: Timing) -> list[tuple[str, int, bool, float, float]]:
    """(label, statements, validate, us per statement, bare us): ``trace``d program minus bare torch calls."""
    configs = {c.name: c for c in make_configs()}
    cases = [
        ("C guide (40 param + 20 sample)", configs["C"], "guide", 60),
        ("C model (21 sample)", configs["C"], "model", 21),
        ("A model (11 sample)", configs["A"], "model", 11),
    ]
    results = []
    for validate in (False, True):
        set_validation(validate)
        for label, config, which, statements in cases:
            ppl.clear_param_store()
            traced = ppl.handlers.trace(
                config.program(ppl, ppl.distributions)[which == "guide"]
            )
            # ppl.distributions: torch's classes plus .to_event, so the torch work is the same
            bare_program = config.program(programs.Bare(), ppl.distributions)[
                which == "guide"
            ]
            args = config.args
            rounds = time_interleaved(
                {"trace": lambda: traced(*args), "bare": lambda: bare_program(*args)},
                Timing(timing.rounds, timing.block / 2, timing.warmup / 2),
            )
            per_statement = rounds.difference("trace", "bare") / statements
            results.append(
                (
                    label,
                    statements,
                    validate,
                    per_statement * 1e6,
                    rounds.median("bare") * 1e6,
                )
            )
    set_validation(True)
    return results


def _failure(error: Exception) -> str:
    return f"failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[
        :100
    ]


def vectorized_particles(timing: Timing) -> list[tuple]:
    """(library, validate, seconds per step of 1 particle, of 10 vectorized particles, their ratio) on A."""
    config = make_configs()[0]
    results = []
    for validate in (False, True):
        set_validation(validate)
        steppers = {}
        for lib in ("ppl", "pyro"):
            if lib == "ppl" and not HAS_PLATE:
                continue
            one = svi_stepper(lib, config)
            P, D = LIBRARIES[lib]
            # same param names: the store is shared, that is fine
            model, guide = config.program(P, D)
            try:
                svi = P.infer.SVI(
                    model,
                    guide,
                    P.optim.Adam({"lr": hand.LR}),
                    P.infer.Trace_ELBO(num_particles=10, vectorize_particles=True),
                )
                # a trial step, so that a failure is reported rather than fatal
                svi.step(*config.args)
            except Exception as error:  # noqa: BLE001
                results.append((lib, validate, _failure(error), None, None))
                continue
            steppers[f"{lib} 1"] = one
            steppers[f"{lib} 10"] = (lambda s: lambda: s.step(*config.args))(svi)
        rounds = time_interleaved(steppers, timing)
        for lib in ("ppl", "pyro"):
            if f"{lib} 1" in rounds:
                results.append(
                    (
                        lib,
                        validate,
                        rounds.median(f"{lib} 1"),
                        rounds.median(f"{lib} 10"),
                        rounds.ratio(f"{lib} 10", f"{lib} 1"),
                    )
                )
    set_validation(True)
    return results


def first_step(repeats: int) -> list[tuple[str, str, float]]:
    """Median milliseconds of the first step of a fresh SVI (param creation included), defaults on."""
    set_validation(True)
    results = []
    for config in make_configs():
        if config.name not in ("A", "C"):
            continue
        samples = {"hand": [], "ppl": [], "pyro": []}
        for _ in range(repeats):
            for lib in samples:
                start = time.perf_counter()
                if lib == "hand":
                    config.hand(*config.args).step()
                else:
                    P, D = LIBRARIES[lib]
                    P.clear_param_store()
                    model, guide = config.program(P, D)
                    svi = P.infer.SVI(
                        model,
                        guide,
                        P.optim.Adam({"lr": hand.LR}),
                        P.infer.Trace_ELBO(),
                    )
                    svi.step(*config.args)
                samples[lib].append(time.perf_counter() - start)
        for lib, values in samples.items():
            results.append((config.name, lib, statistics.median(values) * 1e3))
    return results


# ----------------------------------------------------------------------------------------------
# Report


def _mark(ok: bool) -> str:
    return "yes" if ok else "NO"


def print_svi_table(rows: list[dict]) -> None:
    print(
        "SVI step: median microseconds per step (lower is better); ratios: median over rounds of the"
    )
    print("ratio within each round")
    header = (
        f"{'config':<11} {'program':<33} {'valid':<5} {'hand':>8} {'ppl':>8} {'pyro':>8} "
        f"{'ppl/hand':>9} {'target':>7} {'met':>4} {'pyro/hand':>9} {'pyro/ppl':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        c, validate = row["config"], row["validate"]
        target = c.target_on if validate else c.target_off
        line = f"{c.name:<11} {c.describe:<33} {'on' if validate else 'off':<5} {row['hand'] * 1e6:>8.0f} "
        pyro_hand = row["pyro/hand"]
        if "ppl" in row:
            ratio, speedup = row["ppl/hand"], row["pyro/ppl"]
            goal = ""
            if c.pyro_factor and validate:
                goal = f" (>= {c.pyro_factor:.0f}: {_mark(speedup >= c.pyro_factor)})"
            line += (
                f"{row['ppl'] * 1e6:>8.0f} {row['pyro'] * 1e6:>8.0f} {ratio:>9.2f} "
                f"{target:>7.2f} {_mark(ratio <= target):>4} {pyro_hand:>9.2f} {speedup:>9.2f}{goal}"
            )
        else:
            line += (
                f"{'-':>8} {row['pyro'] * 1e6:>8.0f} {'-':>9} {target:>7.2f} {'-':>4} {pyro_hand:>9.2f} "
                f"{'-':>9}   {row['note']}"
            )
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="few, short rounds: rough numbers, fast"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 31)"
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated configurations, e.g. A,C"
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip handler cost, vectorized particles and first step",
    )
    options = parser.parse_args(argv)
    timing = Timing(rounds=5, block=0.03, warmup=0.1) if options.quick else Timing()
    if options.rounds:
        timing.rounds = options.rounds
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # Pyro logs its guessed max_plate_nesting
    logging.getLogger("pyro").setLevel(logging.WARNING)
    gc.collect()
    # the imported modules' objects: later collections need not walk them again
    gc.freeze()
    configs = make_configs()
    if options.only:
        wanted = set(options.only.split(","))
        configs = [c for c in configs if c.name in wanted]

    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, pyro-ppl {pyro.__version__}, ppl {ppl.__version__}; "
        f"1 torch thread; {timing.rounds} interleaved rounds of ~{timing.block:.2f} s per engine"
    )
    if not HAS_PLATE:
        print(
            f"ppl.plate: {SKIP_PLATE} (B, D and vectorized particles run for hand and pyro only)"
        )
    print()
    print_svi_table(svi_table(configs, timing))

    if not options.no_extras:
        print()
        print(
            "Handler cost in ppl: (program under ppl.handlers.trace - same torch calls bare) / statements"
        )
        print(
            f"{'program':<32} {'valid':<5} {'us/statement':>12} {'bare us':>8} {'<= 8 us':>8}"
        )
        for label, _, validate, per_statement, bare in handler_cost(timing):
            print(
                f"{label:<32} {'on' if validate else 'off':<5} {per_statement:>12.1f} {bare:>8.0f} "
                f"{_mark(per_statement <= 8.0):>8}"
            )

        print()
        print(
            "Vectorized particles on A: Trace_ELBO(num_particles=10, vectorize_particles=True) vs 1 particle"
        )
        results = vectorized_particles(timing)
        print(
            f"{'library':<8} {'valid':<5} {'1 particle us':>14} {'10 vectorized us':>17} {'ratio':>6} {'<= 1.2':>7}"
        )
        for lib, validate, one, ten, ratio in results:
            if ten is None:
                print(f"{lib:<8} {'on' if validate else 'off':<5} {one}")
                continue
            ok = _mark(ratio <= 1.2) if lib == "ppl" else ""
            print(
                f"{lib:<8} {'on' if validate else 'off':<5} {one * 1e6:>14.0f} {ten * 1e6:>17.0f} "
                f"{ratio:>6.2f} {ok:>7}"
            )
        if not HAS_PLATE:
            print(f"ppl      {SKIP_PLATE}")

        print()
        print(
            "First SVI step (fresh param store, params created), validation on: median ms"
        )
        first = first_step(repeats=5 if options.quick else 15)
        print(
            f"{'config':<8} " + " ".join(f"{lib:>8}" for lib in ("hand", "ppl", "pyro"))
        )
        for name in dict.fromkeys(n for n, _, _ in first):
            values = {lib: ms for n, lib, ms in first if n == name}
            print(
                f"{name:<8} "
                + " ".join(f"{values[lib]:>8.2f}" for lib in ("hand", "ppl", "pyro"))
            )

    print()
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
