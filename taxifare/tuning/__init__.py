"""Hyperparameter tuning: the search space (space.py, from trainer/config.py's `search=`), the local
tuner (study.py and its worker processes, worker.py; Optuna's TPE and median pruner), a study's
record (records.py), key-hash folds (folds.py), and Vertex AI's tuning job: its specs and the
best-trial read-back (vertex.py)."""
