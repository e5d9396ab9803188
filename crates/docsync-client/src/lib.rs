//! Typed client (placeholder until codegen lands).
