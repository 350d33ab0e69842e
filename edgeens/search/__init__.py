"""The search (ENS, paper section 3.3) and what it stands on: the evaluation of hybrids from the block pool
(`evaluate`), the multi-objective Bayesian loop and its trial log (`ens`), the resumable run over a folder with its
front and knee (`loop`), Pareto fronts and hypervolume (`pareto`) and the baselines it is compared with
(`baselines`)."""
