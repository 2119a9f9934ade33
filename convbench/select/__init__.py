"""Which algorithm for this layer on this machine: features, fitted selectors, rules, regret
evaluation and the run-time ``backend="auto"`` (:mod:`.auto`)."""
