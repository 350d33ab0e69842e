"""What ENS must beat, with the same objectives, trial log and budget: random search, the paper's rule-based hybrid,
and NSGA-II (pymoo, integer encoding with SBX/PM and rounding, as pymoo documents for discrete problems)."""

from __future__ import annotations

import numpy as np

from edgeens.models.space import RESTORMER
from edgeens.search.ens import Objectives, initial_design


def random_search(objectives: Objectives, budget: int, seed: int) -> None:
    """Uniform random architectures without repeats. Its first points are ENS's initial design for the same seed,
    so the two differ only in what they do after it."""
    for name in initial_design(objectives.problem, budget, seed):
        if objectives.count >= budget:
            return
        objectives(name)


def rule_based(objectives: Objectives) -> None:
    """The paper's rule-based 50/50 hybrid. Our stages are swapped whole, so half the blocks of every stage cannot
    be MambaIR; the nearest members of this space are the two hybrids with every other stage swapped for its
    full-depth MambaIR stack (one starting at encoder1, one at encoder2). A fixed design: no budget to spend."""
    space = objectives.problem.space
    for first in (0, 1):
        tokens = [stage.choices[1] if i % 2 == first else RESTORMER for i, stage in enumerate(space.stages)]
        objectives("-".join(tokens))


def nsga2(objectives: Objectives, budget: int, seed: int, population: int = 20) -> None:
    """NSGA-II until `budget` distinct architectures are evaluated (repeats it proposes cost nothing: they are
    looked up, as the evaluation is deterministic). Generation 0 is the seed's initial design, as for ENS."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem as PymooProblem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    problem = objectives.problem
    upper = np.array(problem.cardinalities) - 1
    space_problem = PymooProblem(n_var=len(upper), n_obj=2, xl=np.zeros(len(upper)), xu=upper, vtype=int)
    algorithm = NSGA2(
        pop_size=population,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    algorithm.setup(space_problem, seed=seed, verbose=False)
    start = np.array([problem.encode(name) for name in initial_design(problem, population, seed)])
    stalled = 0
    generation = 0
    while objectives.count < budget and stalled < 50:
        offspring = Population.new("X", start) if generation == 0 else algorithm.ask()
        before = objectives.count
        values = []
        for x in offspring.get("X"):
            if objectives.count >= budget:
                values.append((np.inf, np.inf))  # past the budget: never selected, never evaluated
                continue
            drop, penalty = objectives(problem.decode(np.round(x).astype(int)))
            values.append((-drop, penalty))  # pymoo minimises
        offspring.set("F", np.array(values, dtype=float))
        Evaluator().eval(space_problem, offspring, skip_already_evaluated=True)
        algorithm.tell(infills=offspring)
        stalled = stalled + 1 if objectives.count == before else 0  # a converged population proposes only repeats
        generation += 1
