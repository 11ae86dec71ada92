"""graph-builder: idempotent writes to Neo4j, entity linking and subgraph retrieval."""
