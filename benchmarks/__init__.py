"""Speed and accuracy measurements of distnet against its peers; see README.md."""
