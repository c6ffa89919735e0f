//! Export of trained parts into the carma-core bundle format.
