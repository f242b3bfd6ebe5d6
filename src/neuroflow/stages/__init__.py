"""The six pipeline stages. Each `run(params, paths)` is what `neuroflow <stage>` calls."""
