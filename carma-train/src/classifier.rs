//! The classifier h(x) (SPEC section 4): logistic regression or an MLP.
