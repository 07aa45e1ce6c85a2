"""The paper's harness: Tables 3 and 4, the figures and studies, and every plot."""
