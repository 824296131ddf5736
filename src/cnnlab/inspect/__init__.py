"""Looking inside any nn.Module: the one capture layer that diagnose, explain, report, the lab
and the explorer are built on (forward order, captured activations and gradients, batches,
the user's model left as it was, a fast inference copy)."""
