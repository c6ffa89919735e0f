//! Neural-network building blocks with hand-written backward passes.
