//! The causal normalizing flow (SPEC section 5): MADE affine layers, training by maximum likelihood.
