"""The knowledge graph: Neo4j writes, entity linking and subgraph retrieval."""
