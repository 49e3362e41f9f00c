"""taxifare: the CLI, the model registries, serving and the cloud plumbing around the trainer,
the pipeline's components and the pipeline (the top-level packages trainer/, components/, pipeline/).

Layers, bottom up (nothing imports upward): errors -> trainer -> cloud, registry.local ->
serving -> registry.vertex -> components -> pipeline -> cli.
"""
