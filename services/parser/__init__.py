"""parser: spaCy NER and dependency parsing of documents and questions."""
