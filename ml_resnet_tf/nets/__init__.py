"""The networks: the generic ODE net and block, the reversible coupling and its memory-efficient
backward pass, the family registry and costs, and one file per family (``families/``).

The bottom layer: it imports Keras and nothing else of this library."""
