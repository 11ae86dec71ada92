"""inference: scores subgraph nodes as answers with the serving model version."""
