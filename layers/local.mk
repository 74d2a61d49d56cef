# layers/: one layer kind per file, and the sequential model.
