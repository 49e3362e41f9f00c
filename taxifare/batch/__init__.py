"""Batch prediction: score a table of trips with a model, in input order, in flat memory.

    from taxifare.batch import models, scoring
    from trainer import drift, predict

    chosen = models.local(registry="runs/registry")          # the champion; or a version, or a folder
    result = scoring.score(["trips.csv"], "preds.csv", predict.Predictor(chosen.model_dir).predict,
                           reference=drift.load(chosen.model_dir))
    print("\\n".join(result.summary()))

inputs.py reads CSV (trainer/sources.py) and JSON lines, outputs.py writes predictions and rejected
rows in place and marks them complete, scoring.py runs read, predict and write side by side,
models.py chooses the model, vertex.py is the same job as a Vertex AI batch prediction job on this
project's serving container. `taxifare predict --data` is the command line over it; pipeline/batch.py
the pipeline.
"""
