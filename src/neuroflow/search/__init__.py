"""Model selection: k-fold cross-validation and hyperparameter search."""
