//! Local reference server (placeholder).
