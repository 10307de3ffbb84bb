"""Evaluation: metrics (Tables 1-5) and the paper's protocols (P1/P2, occlusions, degree curves)."""
