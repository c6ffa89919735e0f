//! Import of a causal flow and classifier trained by the paper's PyTorch code (JSON layout of fixtures/reference).
