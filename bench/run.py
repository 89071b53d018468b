"""Time an SVI step of ppl against hand-written torch, Pyro and NumPyro: ``python bench/run.py``.

Everything runs in one process, on one torch thread. For each configuration (program, size,
validation on or off) the eager engines (hand, ppl, pyro) are built, warmed up, then timed in
interleaved rounds (hand, ppl, pyro, hand, ppl, pyro, ...), each round a block of steps lasting
about 0.06 s per engine; then the compiled engines (hand again, ppl_jit, pyro_jit and, when jax
and numpyro import, numpyro) the same way. The tables show the median over rounds of the time per
step. The compile times are measured cold, each in a fresh process. See ``bench/README.md`` for
how to read it. ``--quick`` gives rough numbers in a fraction of the time; ``--only A,C`` runs
some configurations only; ``--eager-only`` leaves out the compiled engines.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
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

# TorchScript's deprecation notices, which Pyro's JitTrace_ELBO triggers
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")

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
    # the compiled step, validation off and on: ppl_jit / hand <= jit_target,
    # pyro_jit / ppl_jit >= pyro_jit_factor, ppl_jit / numpyro <= numpyro_factor
    jit_target: float | None = None
    pyro_jit_factor: float | None = None
    numpyro_factor: float | None = None
    sizes: dict = field(default_factory=dict)


# The compiled step's goals on A, C and D (validation off and on).
COMPILED_GOALS = {"jit_target": 0.25, "pyro_jit_factor": 3.0, "numpyro_factor": 3.0}
# The compile (the first call of a compiled engine), seconds, at most.
COMPILE_TARGET = 30.0


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
            **COMPILED_GOALS,
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
            jit_target=0.6,
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
            **COMPILED_GOALS,
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
            **COMPILED_GOALS,
        ),
    ]


def set_validation(flag: bool) -> None:
    # Both set torch's default for distribution argument checks too, so hand follows the same switch.
    ppl.enable_validation(flag)
    pyro.enable_validation(flag)


def svi_stepper(
    lib: str, config: Config, jit: bool = False, **elbo_kwargs
) -> Callable[[], float]:
    """A fresh ``SVI.step`` of ``lib`` on ``config``'s program, with an empty param store.

    ``jit``: the library's ``JitTrace_ELBO`` (Pyro's with ``ignore_jit_warnings=True``) instead
    of ``Trace_ELBO``; its first steps compile (see ``jit_stepper``).
    """
    P, D = LIBRARIES[lib]
    P.clear_param_store()
    model, guide = config.program(P, D)
    if jit:
        if lib == "pyro":
            elbo_kwargs = {"ignore_jit_warnings": True, **elbo_kwargs}
        elbo = P.infer.JitTrace_ELBO(**elbo_kwargs)
    else:
        elbo = P.infer.Trace_ELBO(**elbo_kwargs)
    svi = P.infer.SVI(model, guide, P.optim.Adam({"lr": hand.LR}), elbo)
    args = config.args
    return lambda: svi.step(*args)


def jit_stepper(lib: str, config: Config) -> tuple[Callable[[], float], str]:
    """A compiled engine warmed up past its compile, and a note ("" or what went wrong).

    Two steps: ppl's first step runs eagerly (it creates the params and the optimizer's state)
    and its second compiles the whole step; Pyro's first step traces the ELBO with TorchScript.
    A warning from ppl's ``JitTrace_ELBO`` that the step runs eagerly is the note.
    """
    step = svi_stepper(lib, config, jit=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step()
        step()
    fallbacks = [str(w.message) for w in caught if "JitTrace_ELBO" in str(w.message)]
    return step, (f"eager: {fallbacks[0]}"[:100] if fallbacks else "")


def hand_stepper(config: Config) -> Callable[[], float]:
    return config.hand(*config.args).step


_NUMPYRO = None


def numpyro_programs():
    """``bench/numpyro_programs.py``, imported on first use (it imports jax when installed)."""
    global _NUMPYRO
    if _NUMPYRO is None:
        import numpyro_programs as module

        _NUMPYRO = module
    return _NUMPYRO


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


def svi_table(
    configs: list[Config], timing: Timing, compiled: bool = True
) -> list[dict]:
    """One row per configuration and validation setting: the eager engines' times and ratios,
    then (``compiled``) the compiled engines', timed in rounds of their own."""
    rows = []
    for config in configs:
        numpyro_step = None
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
            del steppers, rounds
            if compiled:
                numpyro_step = compiled_rounds(
                    config, validate, timing, row, numpyro_step
                )
            rows.append(row)
            print(".", end="", flush=True, file=sys.stderr)
    set_validation(True)
    return rows


def compiled_rounds(
    config: Config, validate: bool, timing: Timing, row: dict, numpyro_step
):
    """Time hand, ppl_jit, pyro_jit and numpyro in interleaved rounds; fill ``row``'s
    ``jit`` entry. Returns the NumPyro stepper, kept for the next row of the same program
    (its jitted update is compiled once; its state starts afresh for each row)."""
    jit: dict = {"notes": {}}
    steppers = {"hand": hand_stepper(config)}
    for lib in ("ppl", "pyro"):
        name = f"{lib}_jit"
        if lib == "ppl" and config.needs_plate and not HAS_PLATE:
            jit["notes"][name] = SKIP_PLATE
            continue
        try:
            step, note = jit_stepper(lib, config)
        except Exception as error:  # noqa: BLE001
            jit["notes"][name] = _failure(error)
            continue
        steppers[name] = step
        if note:
            jit["notes"][name] = note
    numpyro = numpyro_programs()
    if not numpyro.AVAILABLE:
        jit["notes"]["numpyro"] = numpyro.MISSING
    else:
        numpyro.set_validation(validate)
        try:
            if numpyro_step is None:
                numpyro_step = numpyro.Stepper(config.program.__name__, config.args)
            numpyro_step.init()  # fresh params and optimizer state
            numpyro_step()  # the first update compiles (once per program)
            steppers["numpyro"] = numpyro_step
        except Exception as error:  # noqa: BLE001
            jit["notes"]["numpyro"] = _failure(error)
    rounds = time_interleaved(steppers, timing)
    jit.update({name: rounds.median(name) for name in rounds})
    pairs = {
        "ppl_jit/hand": ("ppl_jit", "hand"),
        "pyro_jit/ppl_jit": ("pyro_jit", "ppl_jit"),
        "ppl_jit/numpyro": ("ppl_jit", "numpyro"),
    }
    for key, (a, b) in pairs.items():
        if a in rounds and b in rounds:
            jit[key] = rounds.ratio(a, b)
    row["jit"] = jit
    print(".", end="", flush=True, file=sys.stderr)
    return numpyro_step


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


# The programs whose compile is timed cold (B at N = 1,000: N changes only the shapes).
FIRST_CALL_CONFIGS = ("A", "B-1k", "B-1k-auto", "C", "D")
FIRST_CALL_ENGINES = ("ppl_jit", "pyro_jit", "numpyro")


def first_call_worker(engine: str, name: str) -> None:
    """In a fresh process: time a compiled engine's first steps, print them as JSON.

    ppl_jit and pyro_jit: steps 1, 2 and 3 of a fresh ``SVI``. numpyro: ``svi.init`` as
    step 1, the first jitted update (the compile) as step 2, the next update as step 3.
    ``end`` is the wall-clock time after step 2, for the time from the process's start.
    Validation on (the libraries' default).
    """
    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    set_validation(True)
    config = {c.name: c for c in make_configs()}[name]
    note = ""
    if engine == "numpyro":
        numpyro = numpyro_programs()
        numpyro.set_validation(True)
        step = numpyro.Stepper(config.program.__name__, config.args)
        first, second = step.init, step
    else:
        step = svi_stepper(engine.removesuffix("_jit"), config, jit=True)
        first = second = step
    times = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for call in (first, second):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        end = time.time()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    fallbacks = [str(w.message) for w in caught if "JitTrace_ELBO" in str(w.message)]
    if fallbacks:
        note = f"eager: {fallbacks[0]}"[:100]
    print(json.dumps({"steps": times, "end": end, "note": note}))


def first_call(names: list[str]) -> list[dict]:
    """Each compiled engine's first steps on each program, cold: a fresh process each, with
    an empty ``TORCHINDUCTOR_CACHE_DIR`` (no compiled code from earlier runs)."""
    engines = [e for e in FIRST_CALL_ENGINES if e != "numpyro"]
    if numpyro_programs().AVAILABLE:
        engines.append("numpyro")
    results = []
    for name in names:
        for engine in engines:
            cache = tempfile.mkdtemp(prefix="bench-inductor-")
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            result = {"engine": engine, "config": name}
            started = time.time()
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--first-call-worker", engine, name],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=600,
                )
                lines = done.stdout.strip().splitlines()
                if done.returncode != 0 or not lines:
                    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    result["note"] = f"failed: {tail}"[:100]
                else:
                    result.update(json.loads(lines[-1]))
                    result["from start"] = result.pop("end") - started
            except subprocess.TimeoutExpired:
                result["note"] = "failed: no result in 600 s"
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            results.append(result)
            print(".", end="", flush=True, file=sys.stderr)
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


def _goal(value: float, target: float | None, at_most: bool, width: int) -> str:
    """``value``, ``target`` and ``met`` cells; dashes where there is no value or no target."""
    if target is None:
        return f"{value:>{width}.2f} {'-':>7} {'-':>4}"
    met = value <= target if at_most else value >= target
    sign = "<=" if at_most else ">="
    return f"{value:>{width}.2f} {sign + format(target, '.2f'):>7} {_mark(met):>4}"


def print_compiled_table(rows: list[dict]) -> None:
    print(
        "Compiled SVI step: median microseconds per step (hand timed again, in the compiled"
    )
    print("engines' rounds); ratios: median over rounds of the ratio within each round")
    header = (
        f"{'config':<11} {'valid':<5} {'hand':>8} {'ppl_jit':>8} {'pyro_jit':>8} "
        f"{'numpyro':>13} {'ppl_jit/hand':>12} {'target':>7} {'met':>4} "
        f"{'pyro_jit/ppl_jit':>16} {'target':>7} {'met':>4} "
        f"{'ppl_jit/numpyro':>15} {'target':>7} {'met':>4}"
    )
    print(header)
    print("-" * len(header))
    notes = []
    for row in rows:
        c, jit = row["config"], row["jit"]
        valid = "on" if row["validate"] else "off"
        line = f"{c.name:<11} {valid:<5} {jit['hand'] * 1e6:>8.0f} "
        for name, width in (("ppl_jit", 8), ("pyro_jit", 8), ("numpyro", 13)):
            if name in jit:
                line += f"{jit[name] * 1e6:>{width}.0f} "
            elif jit["notes"].get(name, "").startswith("not installed"):
                line += f"{'not installed':>{width}} "
            else:
                line += f"{'-':>{width}} "
        cells = (
            ("ppl_jit/hand", c.jit_target, True, 12),
            ("pyro_jit/ppl_jit", c.pyro_jit_factor, False, 16),
            ("ppl_jit/numpyro", c.numpyro_factor, True, 15),
        )
        line += " ".join(
            _goal(jit[key], target, at_most, width)
            if key in jit
            else f"{'-':>{width}} {'-':>7} {'-':>4}"
            for key, target, at_most, width in cells
        )
        print(line.rstrip())
        for name, note in jit["notes"].items():
            if not note.startswith("not installed"):
                notes.append(f"  {c.name} {valid}, {name}: {note}")
    for note in dict.fromkeys(notes):
        print(note)


def compile_seconds(engine: str, steps: list[float]) -> float:
    """The compile in a first-call measurement: ppl_jit's step 2; Pyro's steps 1 to 3
    (TorchScript traces on the first step, and its profiling executor profiles and optimizes
    the graph on the next two); NumPyro's step 2 (the first jitted update)."""
    return sum(steps) if engine == "pyro_jit" else steps[1]


def print_first_call(results: list[dict]) -> None:
    print(
        "First call, cold (a fresh process each, an empty TORCHINDUCTOR_CACHE_DIR), validation on:"
    )
    print(
        "seconds. ppl_jit: step 1 eager, step 2 compiles. pyro_jit: step 1 traces (TorchScript),"
    )
    print(
        "steps 2-3 optimize. numpyro: step 1 is svi.init, step 2 the first jitted update. 'compile':"
    )
    print(
        "those compiling steps; 'from start': the process's start (imports included) to the end"
    )
    print(
        f"of step 2; step 3 in milliseconds; the compile target, <= {COMPILE_TARGET:.0f} s, is ppl_jit's."
    )
    header = (
        f"{'engine':<9} {'config':<10} {'step 1':>7} {'step 2':>7} {'step 3 ms':>9} "
        f"{'compile':>8} {'from start':>10} {'<= 30 s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        line = f"{r['engine']:<9} {r['config']:<10} "
        if "steps" not in r:
            print(line + r["note"])
            continue
        one, two, three = r["steps"]
        compile_s = compile_seconds(r["engine"], r["steps"])
        ok = _mark(compile_s <= COMPILE_TARGET) if r["engine"] == "ppl_jit" else ""
        line += (
            f"{one:>7.2f} {two:>7.2f} {three * 1e3:>9.2f} {compile_s:>8.2f} "
            f"{r['from start']:>10.2f} {ok:>8}"
        )
        print(line.rstrip() + (f"   {r['note']}" if r.get("note") else ""))


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
        help="skip handler cost, vectorized particles, first step and first call",
    )
    parser.add_argument(
        "--eager-only",
        action="store_true",
        help="leave out the compiled engines (ppl_jit, pyro_jit, numpyro) and first call",
    )
    parser.add_argument(
        "--first-call-worker",
        nargs=2,
        metavar=("ENGINE", "CONFIG"),
        help=argparse.SUPPRESS,
    )
    options = parser.parse_args(argv)
    if options.first_call_worker:
        first_call_worker(*options.first_call_worker)
        return 0
    timing = Timing(rounds=5, block=0.03, warmup=0.1) if options.quick else Timing()
    if options.rounds:
        timing.rounds = options.rounds
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # Pyro logs its guessed max_plate_nesting
    logging.getLogger("pyro").setLevel(logging.WARNING)
    compiled = not options.eager_only
    numpyro = numpyro_programs() if compiled else None  # imports jax before gc.freeze
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
    if numpyro is not None:
        print(
            f"numpyro column: {numpyro.VERSIONS}, CPU, 1 thread"
            if numpyro.AVAILABLE
            else f"numpyro column: {numpyro.MISSING}"
        )
    if not HAS_PLATE:
        print(
            f"ppl.plate: {SKIP_PLATE} (B, D and vectorized particles run for hand and pyro only)"
        )
    print()
    rows = svi_table(configs, timing, compiled)
    print_svi_table(rows)
    if compiled:
        print()
        print_compiled_table(rows)

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

        if compiled:
            names = [n for n in FIRST_CALL_CONFIGS if n in {c.name for c in configs}]
            if names:
                print()
                print_first_call(first_call(names))

    print()
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
