"""Data, proxy training, the Optuna study, executors, Pareto analysis, plots and export."""
