//! Ground-truth structural causal models (SPEC section 2).
